"""Stage: top-1 accuracy on the whole test split of the float model, the deployed edge (float
cloud behind it), the deployed edge with int8 on the wire, and the unprotected twin; agreement of
float and deployed predictions; test images whose features are all zero."""

from __future__ import annotations

import numpy as np

from .. import wire
from ..backends.torch.runner import torch_outputs
from ..documents.check_report import AccuracySection
from ..privacy.budget import AttackBudget
from .context import CheckContext, Progress

NAME = "accuracy"
SLOT = ("accuracy",)


def _all_zero(z: np.ndarray) -> int:
    return int((np.abs(z).reshape(len(z), -1).max(1) == 0).sum())


def run(ctx: CheckContext, budget: AttackBudget, seed: int, progress: Progress) -> AccuracySection:
    labels = ctx.test_labels
    z_float, z_deployed = ctx.float_side.z_all_test, ctx.deployed_side.z_all_test
    cloud = ctx.checkpoint.model.cloud
    pred_float = torch_outputs(cloud, z_float).argmax(1)
    pred_deployed = torch_outputs(cloud, z_deployed).argmax(1)
    pred_wire = torch_outputs(cloud, wire.roundtrip(z_deployed, ctx.manifest["features"]["wire_int8"])).argmax(1)
    pred_twin = torch_outputs(ctx.twin_checkpoint.model.cloud, ctx.twin_side.z_all_test).argmax(1)
    float_acc, deployed_acc = float((pred_float == labels).mean()), float((pred_deployed == labels).mean())
    wire_acc = float((pred_wire == labels).mean())
    return AccuracySection(
        images=int(len(labels)), float=float_acc, deployed=deployed_acc, deployed_wire_int8=wire_acc,
        top1_agreement=float((pred_float == pred_deployed).mean()), twin=float((pred_twin == labels).mean()),
        drop_points=(float_acc - deployed_acc) * 100, wire_int8_drop_points=(float_acc - wire_acc) * 100,
        all_zero_features={"float": _all_zero(z_float), "deployed": _all_zero(z_deployed)})
