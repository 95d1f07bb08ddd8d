"""Stage: the black-box decoder attack (an inverse decoder trained on the attacker's aux pairs)
against the float and the deployed features, with the same seed list on both sides so the gate can
pair them per seed and per image; the transfer attack (the float decoder on deployed features); the
label-only and no-information baselines.

Pairing (the budget's `decoder_pairing`):
- independent: per seed, one decoder on float and one on deployed features, each trained from
  scratch with that seed's initial weights and batch order. Where training lands varies by seed,
  and on strongly protected features two decoders of one seed can land apart although their
  features are near-identical; that seed noise widens the paired interval.
- branched: per seed, a trunk trained for half the epochs on the deployed features, then two
  branches warm-started from it with the same batch order for the other half, at a quarter of the
  learning rate: one on float, one on deployed features. Where training lands is decided in the
  trunk and shared, so it cancels in the difference. The trunk sees the deployed features, which
  favours the deployed branch if anything: the gate errs towards failing. Total decoder steps per
  seed: 1.5x one decoder's, against 2x for independent."""

from __future__ import annotations

import numpy as np

from ..documents.check_report import AttackScores, DecoderSection
from ..privacy.budget import AttackBudget
from .context import CheckContext, Progress

NAME = "decoder attack"
SLOT = ("attack",)
SCORES = ("ssim", "psnr", "mse")
PAIRED = ("ssim", "psnr")
BRANCH_LR_FACTOR = 0.25  # a branch's peak learning rate against the trunk's: it stays where the trunk landed


def train_attacker(z_aux: np.ndarray, x_aux: np.ndarray, seed: int, budget: AttackBudget, progress: Progress,
                   label: str, epochs: int | None = None, lr: float | None = None, init=None):
    """One decoder of the budget's size, trained on (features, image) pairs of the aux split."""
    from ..privacy.decoder import train_decoder

    return train_decoder(z_aux, x_aux, seed, epochs or budget.decoder_epochs, budget.decoder_width,
                         budget.decoder_batch, lr or budget.decoder_lr, init=init,
                         on_step=lambda r: progress(f"decoder {label}", r.step, r.total))


def seed_attackers(ctx: CheckContext, seed: int, budget: AttackBudget, progress: Progress) -> tuple:
    """(float decoder, deployed decoder) of one seed, paired as the budget says."""
    z_float, z_deployed, x_aux = ctx.float_side.z_aux, ctx.deployed_side.z_aux, ctx.x_aux
    if budget.decoder_pairing == "independent":
        return (train_attacker(z_float, x_aux, seed, budget, progress, f"float seed {seed}"),
                train_attacker(z_deployed, x_aux, seed, budget, progress, f"deployed seed {seed}"))
    trunk_epochs = max(1, budget.decoder_epochs // 2)
    branch_epochs = max(1, budget.decoder_epochs - trunk_epochs)
    trunk = train_attacker(z_deployed, x_aux, seed, budget, progress, f"trunk seed {seed}", epochs=trunk_epochs)
    branch = dict(epochs=branch_epochs, lr=budget.decoder_lr * BRANCH_LR_FACTOR, init=trunk)
    return (train_attacker(z_float, x_aux, seed, budget, progress, f"float seed {seed}", **branch),
            train_attacker(z_deployed, x_aux, seed, budget, progress, f"deployed seed {seed}", **branch))


def summarise(scores: list, budget: AttackBudget, seed: int) -> AttackScores:
    """Seed-averaged per-image scores with bootstrap intervals, plus the mean of each seed."""
    from ..privacy.metrics import bootstrap_mean

    out = {}
    for metric in SCORES:
        stacked = np.mean([sc.metric(metric) for sc in scores], axis=0)
        out[metric] = {**bootstrap_mean(stacked, budget.confidence, budget.bootstrap_resamples, seed).as_dict(),
                       "per_seed": [float(sc.metric(metric).mean()) for sc in scores]}
    return AttackScores(**out)


def run(ctx: CheckContext, budget: AttackBudget, seed: int, progress: Progress) -> DecoderSection:
    from ..privacy.decoder import reconstruct
    from ..privacy.metrics import (label_only_reconstruction, no_information_reconstruction, paired_difference,
                                   score_images)

    floating, deployed = ctx.float_side, ctx.deployed_side
    x_aux, x_test = ctx.x_aux, ctx.x_test
    seeds = [seed + s for s in budget.decoder_seeds]
    per_seed = {"float": [], "deployed": [], "transfer": []}
    for s in seeds:
        dec_float, dec_deployed = seed_attackers(ctx, s, budget, progress)
        rec = {"float": reconstruct(dec_float, floating.z_test), "deployed": reconstruct(dec_deployed, deployed.z_test),
               "transfer": reconstruct(dec_float, deployed.z_test)}
        for key, images in rec.items():
            per_seed[key].append(score_images(x_test, images))
        if s == seeds[0]:
            ctx.add_reconstructions(f"from float features (seed {s})", rec["float"])
            ctx.add_reconstructions(f"from deployed features (seed {s})", rec["deployed"])

    paired = {}
    for metric in PAIRED:
        diff = paired_difference([sc.metric(metric) for sc in per_seed["deployed"]],
                                 [sc.metric(metric) for sc in per_seed["float"]], budget.confidence)
        paired[metric] = {**diff.as_dict(), "upper": diff.high}
    label_only = score_images(x_test, label_only_reconstruction(x_aux, ctx.aux_labels, ctx.test_labels[:ctx.test_count]))
    no_info = score_images(x_test, no_information_reconstruction(x_aux, ctx.test_count))
    return DecoderSection(
        **{side: summarise(scores, budget, seed) for side, scores in per_seed.items()}, paired=paired,
        baselines={"label_only_ssim": float(label_only.metric("ssim").mean()),
                   "no_information_ssim": float(no_info.metric("ssim").mean())})
