"""Stage: the white-box optimisation attack (the attacker holds the edge's weights and optimises an
input until its features match the observed ones) on the float edge, on a fake-quantised copy of it
against the deployed features, and on the unprotected twin's edge. Reported, not gated."""

from __future__ import annotations

import copy

from ..documents.check_report import WhiteBoxSection
from ..privacy.budget import AttackBudget
from .context import CheckContext, Progress

NAME = "white-box attack"
SLOT = ("whitebox",)


def fake_quantised(edge):
    """A copy of the float edge with every conv/linear weight rounded to per-channel symmetric int8."""
    import torch

    twin = copy.deepcopy(edge).eval()
    with torch.no_grad():
        for module in twin.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                w = module.weight
                scale = w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127
                shape = (-1,) + (1,) * (w.ndim - 1)
                w.copy_(torch.round(w / scale.view(shape)).clamp(-127, 127) * scale.view(shape))
    return twin


def run(ctx: CheckContext, budget: AttackBudget, seed: int, progress: Progress) -> WhiteBoxSection:
    from ..privacy.metrics import score_images
    from ..privacy.whitebox import whitebox_attack

    n = min(budget.whitebox_images, ctx.test_count)
    ckpt, twin = ctx.checkpoint, ctx.twin_checkpoint
    # (edge the attacker optimises through, the features it matches, that edge's input normalisation)
    targets = {"float": (ckpt.model.edge, ctx.float_side, ckpt),
               "fake_quantised": (fake_quantised(ckpt.model.edge), ctx.deployed_side, ckpt),
               "twin": (twin.model.edge, ctx.twin_side, twin)}
    out = {}
    for label, (edge, side, normalised_as) in targets.items():
        result = whitebox_attack(edge, side.z_test[:n], ctx.checkpoint.spec.input_shape, normalised_as.mean,
                                 normalised_as.std, steps=budget.whitebox_steps, lr=budget.whitebox_lr,
                                 tv_weight=budget.whitebox_tv_weight, relative=budget.whitebox_relative,
                                 project=budget.whitebox_project, seed=seed,
                                 on_step=lambda r, label=label: progress(f"white-box {label}", r.step, r.total))
        scores = score_images(ctx.x_test[:n], result.images)
        out[label] = {"ssim": float(scores.metric("ssim").mean()), "psnr": float(scores.metric("psnr").mean()),
                      "record": result.record.as_dict()}
    return WhiteBoxSection(**out)
