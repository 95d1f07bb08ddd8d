"""Stage: the black-box decoder attack (an inverse decoder trained on the attacker's aux pairs)
against the float and the deployed features, with the same seed list on both sides so the gate can
pair them per seed and per image; the transfer attack (the float decoder on deployed features); the
label-only and no-information baselines."""

from __future__ import annotations

import numpy as np

from ..documents.check_report import AttackScores, DecoderSection
from ..privacy.budget import AttackBudget
from .context import CheckContext, Progress

NAME = "decoder attack"
SLOT = ("attack",)
SCORES = ("ssim", "psnr", "mse")
PAIRED = ("ssim", "psnr")


def train_attacker(z_aux: np.ndarray, x_aux: np.ndarray, seed: int, budget: AttackBudget, progress: Progress,
                   label: str):
    """One decoder of the budget's size, trained on (features, image) pairs of the aux split."""
    from ..privacy.decoder import train_decoder

    return train_decoder(z_aux, x_aux, seed, budget.decoder_epochs, budget.decoder_width, budget.decoder_batch,
                         budget.decoder_lr, on_step=lambda r: progress(f"decoder {label}", r.step, r.total))


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
        dec_float = train_attacker(floating.z_aux, x_aux, s, budget, progress, f"float seed {s}")
        dec_deployed = train_attacker(deployed.z_aux, x_aux, s, budget, progress, f"deployed seed {s}")
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
