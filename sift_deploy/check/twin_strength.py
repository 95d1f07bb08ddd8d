"""Stage: attack strength. The decoder attack of the decoder stage, against the unprotected twin's
features: an attack that cannot reconstruct the twin's inputs proves nothing about the SiftFunnel
edge (the gate's `min_twin_ssim`)."""

from __future__ import annotations

from ..documents.check_report import TwinStrengthSection
from ..privacy.budget import AttackBudget
from .context import CheckContext, Progress
from .decoder import summarise, train_attacker

NAME = "attack strength (unprotected twin)"
SLOT = ("attack", "twin")


def run(ctx: CheckContext, budget: AttackBudget, seed: int, progress: Progress) -> TwinStrengthSection:
    from ..privacy.decoder import reconstruct
    from ..privacy.metrics import score_images

    twin = ctx.twin_side
    scores = []
    for s in budget.twin_seeds:
        decoder = train_attacker(twin.z_aux, ctx.x_aux, seed + s, budget, progress, f"twin seed {seed + s}")
        reconstructed = reconstruct(decoder, twin.z_test)
        scores.append(score_images(ctx.x_test, reconstructed))
    ctx.add_reconstructions("from unprotected twin features", reconstructed)  # the last seed's
    return summarise(scores, budget, seed)
