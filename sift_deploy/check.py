"""`sift-deploy check BUNDLE`: accuracy and model-inversion leakage of the deployed artifact
against the float model, on the same data in the same run, turned into a verdict by the bounds.

Measured: top-1 accuracy (float model; deployed edge -> float cloud; with int8 on the wire); the
black-box decoder attack adapted to each side with the same seed list (the gate compares the two
paired per seed and per image); the transfer attack (float decoder on deployed features, reported);
the same attack against the unprotected twin (attack strength, gated); label-only and
no-information baselines; MINE I(x; z), dCor(x, z) and the non-zero count of z; the white-box
optimisation attack on the float edge and on its fake-quantised copy (reported).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, wire
from .backends import open_runner
from .bundle import require_intact
from .checkpoint import REFERENCE_CHECKPOINT, REFERENCE_TWIN, Checkpoint, load_checkpoint
from .data.preprocess import fit_to_size, normalize, to_unit
from .data.sources import load_dataset
from .data.splits import make_splits
from .errors import SiftError
from .models import TWINS
from .backends.base import run_in_batches
from .backends.torch.runner import torch_outputs
from .privacy.budget import AttackBudget

SCHEMA_VERSION = 1
Progress = Callable[[str, int, int], None]


@dataclass
class Side:
    """Features of one model/artifact on the attacker's aux images and the private test images."""

    label: str
    z_aux: np.ndarray
    z_test: np.ndarray


def _resolve_checkpoint(manifest: dict, checkpoint: Path | None) -> Checkpoint:
    recorded = manifest["source_checkpoint"]
    candidates = [Path(checkpoint)] if checkpoint is not None else [Path(recorded["path"]), REFERENCE_CHECKPOINT]
    for path in candidates:
        if path.is_file():
            ckpt = load_checkpoint(path, arch=manifest["model"]["arch"] if recorded.get("official_format") else None)
            if ckpt.sha256 == recorded["sha256"]:
                return ckpt
            if checkpoint is not None:
                raise SiftError(f"{path} is not the checkpoint this bundle was exported from (sha256 differs); "
                                f"pass the original with --checkpoint")
    raise SiftError(f"the float checkpoint of this bundle ({recorded['path']}) is not here; pass it with --checkpoint")


def _resolve_twin(ckpt: Checkpoint, twin: Path | None) -> tuple[Checkpoint, str]:
    if twin is not None:
        return load_checkpoint(twin), str(twin)
    arch = ckpt.spec.arch
    if arch.startswith("plain-"):
        return ckpt, "the checked model itself (it is unprotected)"
    if TWINS.get(arch) == "plain-cnn" and REFERENCE_TWIN.is_file() and ckpt.path == REFERENCE_CHECKPOINT:
        return load_checkpoint(REFERENCE_TWIN), str(REFERENCE_TWIN)
    raise SiftError(f"no unprotected twin is known for {ckpt.path}; train one with `sift-deploy train --arch "
                    f"{TWINS.get(arch, 'plain-cnn')} --defense none` and pass it with --twin")


def _fake_quantised(edge):
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


def _deployed_runner(bundle: Path, manifest: dict):
    """The bundle's own runtime, or its labelled stand-in where that runtime is not available here."""
    runner = open_runner(bundle, manifest, threads=manifest["profile"]["threads"], fallback=True)
    runner.activate()
    label = runner.name if runner.kind == "native" else f"{runner.name} ({runner.label})"
    return runner, label


def _bound(name: str, measured: float, limit: float, kind: str, detail: str) -> dict:
    ok = measured <= limit if kind == "max" else measured >= limit
    return {"name": name, "measured": float(measured), "limit": float(limit), "kind": kind, "passed": bool(ok),
            "detail": detail}


def run_check(
    bundle: Path,
    bounds: dict,
    budget: AttackBudget,
    seed: int = 0,
    data_dir: Path | None = None,
    checkpoint: Path | None = None,
    twin: Path | None = None,
    progress: Progress | None = None,
) -> tuple[dict, dict]:
    """Measure everything; returns (report, arrays for the reconstruction grid)."""
    from .privacy.decoder import reconstruct, train_decoder
    from .privacy.dependence import distance_correlation, nonzero_stats
    from .privacy.metrics import (bootstrap_mean, label_only_reconstruction, no_information_reconstruction,
                                  paired_difference, score_images)
    from .privacy.mine import estimate_mutual_information
    from .privacy.whitebox import whitebox_attack

    tick = progress or (lambda *_: None)
    started = time.perf_counter()
    bundle = Path(bundle)
    manifest = require_intact(bundle)
    ckpt = _resolve_checkpoint(manifest, checkpoint)
    twin_ckpt, twin_source = _resolve_twin(ckpt, twin)
    spec = ckpt.spec
    if twin_ckpt.spec.input_size != spec.input_size or twin_ckpt.spec.in_channels != spec.in_channels:
        raise SiftError("the twin checkpoint takes other inputs than the checked model; pass a matching --twin")
    split_seed = int(ckpt.metadata.get("dataset", {}).get("seed", 0))
    splits = make_splits(load_dataset(data_dir), seed=split_seed)
    if splits.train.images.shape[1] != spec.in_channels:
        raise SiftError(f"the data has {splits.train.images.shape[1]} channels but the model takes {spec.in_channels}")
    mean, std = ckpt.mean, ckpt.std
    seeds = tuple(seed + s for s in budget.decoder_seeds)

    def unit(images: np.ndarray) -> np.ndarray:
        return to_unit(fit_to_size(images, spec.input_size))

    aux_n, test_n = min(budget.aux_images, len(splits.aux)), min(budget.test_images, len(splits.test))
    x_aux, x_test = unit(splits.aux.images[:aux_n]), unit(splits.test.images[:test_n])
    x_all_test = unit(splits.test.images)
    in_aux, in_all_test = normalize(x_aux, mean, std), normalize(x_all_test, mean, std)
    report: dict = {"schema_version": SCHEMA_VERSION, "tool_version": __version__, "bundle": str(bundle),
                    "target": manifest["target"], "backend": manifest["backend"], "precision": manifest["precision"],
                    "checkpoint": str(ckpt.path), "twin": twin_source, "seed": seed, "budget": budget.as_dict(),
                    "data": {**splits.info.as_dict(), "aux_used": aux_n, "test_used": test_n}}

    tick("features", 0, 3)
    runner, runtime_label = _deployed_runner(bundle, manifest)
    report["runtime"] = runtime_label
    try:
        z_dep_all = run_in_batches(runner.infer, in_all_test, 256)
        deployed = Side("deployed", run_in_batches(runner.infer, in_aux, 256), z_dep_all[:test_n])
    finally:
        runner.deactivate()
    tick("features", 1, 3)
    z_float_all = torch_outputs(ckpt.model.edge, in_all_test)
    floating = Side("float", torch_outputs(ckpt.model.edge, in_aux), z_float_all[:test_n])
    tick("features", 2, 3)
    z_twin_all = torch_outputs(twin_ckpt.model.edge, normalize(x_all_test, twin_ckpt.mean, twin_ckpt.std))
    twin_side = Side("twin", torch_outputs(twin_ckpt.model.edge, normalize(x_aux, twin_ckpt.mean, twin_ckpt.std)),
                     z_twin_all[:test_n])
    tick("features", 3, 3)

    labels = splits.test.labels
    cloud = ckpt.model.cloud
    pred_float = torch_outputs(cloud, z_float_all).argmax(1)
    pred_dep = torch_outputs(cloud, z_dep_all).argmax(1)
    pred_wire = torch_outputs(cloud, wire.roundtrip(z_dep_all, manifest["features"]["wire_int8"])).argmax(1)
    acc = {"images": int(len(labels)), "float": float((pred_float == labels).mean()),
           "deployed": float((pred_dep == labels).mean()), "deployed_wire_int8": float((pred_wire == labels).mean()),
           "top1_agreement": float((pred_float == pred_dep).mean()),
           "twin": float((torch_outputs(twin_ckpt.model.cloud, z_twin_all).argmax(1) == labels).mean())}
    acc["drop_points"] = (acc["float"] - acc["deployed"]) * 100
    acc["wire_int8_drop_points"] = (acc["float"] - acc["deployed_wire_int8"]) * 100
    acc["all_zero_features"] = {"float": int((np.abs(z_float_all).reshape(len(labels), -1).max(1) == 0).sum()),
                                "deployed": int((np.abs(z_dep_all).reshape(len(labels), -1).max(1) == 0).sum())}
    report["accuracy"] = acc

    def decoder_progress(label: str):
        return lambda r: tick(f"decoder {label}", r.step, r.total)

    per_seed = {"float": [], "deployed": [], "transfer": []}
    grid = {"original": x_test[:12]}
    for s in seeds:
        dec_f = train_decoder(floating.z_aux, x_aux, s, budget.decoder_epochs, budget.decoder_width,
                              budget.decoder_batch, budget.decoder_lr, on_step=decoder_progress(f"float seed {s}"))
        dec_d = train_decoder(deployed.z_aux, x_aux, s, budget.decoder_epochs, budget.decoder_width,
                              budget.decoder_batch, budget.decoder_lr, on_step=decoder_progress(f"deployed seed {s}"))
        rec = {"float": reconstruct(dec_f, floating.z_test), "deployed": reconstruct(dec_d, deployed.z_test),
               "transfer": reconstruct(dec_f, deployed.z_test)}
        for key, images in rec.items():
            per_seed[key].append(score_images(x_test, images))
        if s == seeds[0]:
            grid.update({f"from float features (seed {s})": rec["float"][:12],
                         f"from deployed features (seed {s})": rec["deployed"][:12]})

    def side_summary(scores) -> dict:
        out = {}
        for metric in ("ssim", "psnr", "mse"):
            stacked = np.mean([sc.metric(metric) for sc in scores], axis=0)
            out[metric] = bootstrap_mean(stacked, budget.confidence, budget.bootstrap_resamples, seed).as_dict()
            out[metric]["per_seed"] = [float(sc.metric(metric).mean()) for sc in scores]
        return out

    attack = {name: side_summary(scores) for name, scores in per_seed.items()}
    attack["paired"] = {}
    for metric in ("ssim", "psnr"):
        diff = paired_difference([sc.metric(metric) for sc in per_seed["deployed"]],
                                 [sc.metric(metric) for sc in per_seed["float"]], budget.confidence)
        attack["paired"][metric] = {**diff.as_dict(), "upper": diff.high}
    twin_scores = []
    for s in budget.twin_seeds:
        dec_t = train_decoder(twin_side.z_aux, x_aux, seed + s, budget.decoder_epochs, budget.decoder_width,
                              budget.decoder_batch, budget.decoder_lr, on_step=decoder_progress(f"twin seed {seed + s}"))
        twin_rec = reconstruct(dec_t, twin_side.z_test)
        twin_scores.append(score_images(x_test, twin_rec))
    grid["from unprotected twin features"] = twin_rec[:12]
    attack["twin"] = side_summary(twin_scores)
    label_only = score_images(x_test, label_only_reconstruction(x_aux, splits.aux.labels[:aux_n], labels[:test_n]))
    no_info = score_images(x_test, no_information_reconstruction(x_aux, test_n))
    attack["baselines"] = {"label_only_ssim": float(label_only.metric("ssim").mean()),
                           "no_information_ssim": float(no_info.metric("ssim").mean())}
    report["attack"] = attack

    info: dict = {}
    mine_n, held_n = min(budget.mine_train_pairs, aux_n), min(budget.mine_heldout_pairs, test_n)
    critics = {}
    for side in (floating, deployed, twin_side):
        mine = estimate_mutual_information(x_aux[:mine_n], side.z_aux[:mine_n], x_test[:held_n], side.z_test[:held_n],
                                           seed=seed, epochs=budget.mine_epochs, lr=budget.mine_lr,
                                           on_step=lambda r, label=side.label: tick(f"MINE {label}", r.step, r.total))
        critics[side.label] = mine
        dcor_n = min(budget.dcor_samples, test_n)
        info[side.label] = {"mi_nats": mine.mi_nats, "mi_own_critic_nats": mine.mi_nats, "mine": mine.as_dict(),
                            "dcor": distance_correlation(x_test[:dcor_n], side.z_test[:dcor_n], seed=seed),
                            "nonzero": nonzero_stats(side.z_test).as_dict()}
    # Each critic's DV bound is a lower bound on any side's MI. Scoring float and deployed pairs with both
    # critics and keeping the larger bound removes most of the critic-training noise from the comparison
    # (with one critic per side, deployed - float swung by up to 0.5 nats between critic seeds on the reference).
    for label, other in (("float", "deployed"), ("deployed", "float")):
        side = floating if label == "float" else deployed
        cross = critics[other].bound_on(x_test[:held_n], side.z_test[:held_n])
        info[label]["mi_other_critic_nats"] = cross
        info[label]["mi_nats"] = max(info[label]["mi_own_critic_nats"], cross)
    report["information"] = info

    wb_n = min(budget.whitebox_images, test_n)
    wb = {}
    for label, edge, target, norm in (("float", ckpt.model.edge, floating.z_test[:wb_n], (mean, std)),
                                      ("fake_quantised", _fake_quantised(ckpt.model.edge), deployed.z_test[:wb_n], (mean, std)),
                                      ("twin", twin_ckpt.model.edge, twin_side.z_test[:wb_n], (twin_ckpt.mean, twin_ckpt.std))):
        result = whitebox_attack(edge, target, spec.input_shape, *norm, steps=budget.whitebox_steps,
                                 lr=budget.whitebox_lr, tv_weight=budget.whitebox_tv_weight,
                                 relative=budget.whitebox_relative, project=budget.whitebox_project, seed=seed,
                                 on_step=lambda r, label=label: tick(f"white-box {label}", r.step, r.total))
        scores = score_images(x_test[:wb_n], result.images)
        wb[label] = {"ssim": float(scores.metric("ssim").mean()), "psnr": float(scores.metric("psnr").mean()),
                     "record": result.record.as_dict()}
    report["whitebox"] = wb

    report["bounds"] = evaluate_bounds(report, bounds)
    report["passed"] = all(b["passed"] for b in report["bounds"])
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report, grid


def evaluate_bounds(report: dict, bounds: dict) -> list[dict]:
    acc, attack, info = report["accuracy"], report["attack"], report["information"]
    out = [_bound("accuracy drop", acc["drop_points"], bounds["accuracy"]["max_drop_points"], "max",
                  f"float {acc['float']:.2%} -> deployed {acc['deployed']:.2%} (points)")]
    if "max_wire_int8_drop_points" in bounds["accuracy"]:
        out.append(_bound("accuracy drop with int8 on the wire", acc["wire_int8_drop_points"],
                          bounds["accuracy"]["max_wire_int8_drop_points"], "max",
                          f"float {acc['float']:.2%} -> {acc['deployed_wire_int8']:.2%} (points)"))
    leak = bounds["leakage"]
    ssim = attack["paired"]["ssim"]
    out.append(_bound("SSIM increase (upper 95%)", ssim["upper"], leak["max_ssim_increase"], "max",
                      f"deployed - float, mean {ssim['mean']:+.4f}, {ssim['seeds']} seeds x {ssim['images']} images"))
    if "max_psnr_increase_db" in leak:
        psnr = attack["paired"]["psnr"]
        out.append(_bound("PSNR increase (upper 95%, dB)", psnr["upper"], leak["max_psnr_increase_db"], "max",
                          f"deployed - float, mean {psnr['mean']:+.3f} dB"))
    if "max_mi_increase_nats" in leak:
        delta = info["deployed"]["mi_nats"] - info["float"]["mi_nats"]
        out.append(_bound("MI increase (nats)", delta, leak["max_mi_increase_nats"], "max",
                          f"MINE: float {info['float']['mi_nats']:.3f} -> deployed {info['deployed']['mi_nats']:.3f}"))
    deployed_ssim = attack["deployed"]["ssim"]["high"]
    if "max_ssim" in leak:
        out.append(_bound("SSIM cap (deployed, upper 95%)", deployed_ssim, leak["max_ssim"], "max",
                          f"mean {attack['deployed']['ssim']['mean']:.4f}"))
    if "max_psnr_db" in leak:
        out.append(_bound("PSNR cap (deployed, upper 95%, dB)", attack["deployed"]["psnr"]["high"], leak["max_psnr_db"],
                          "max", f"mean {attack['deployed']['psnr']['mean']:.3f} dB"))
    if "max_mi_nats" in leak:
        out.append(_bound("MI cap (deployed, nats)", info["deployed"]["mi_nats"], leak["max_mi_nats"], "max", "MINE"))
    twin = attack["twin"]["ssim"]["mean"]
    out.append(_bound("attack strength: SSIM against the unprotected twin", twin, bounds["attack"]["min_twin_ssim"],
                      "min", f"label-only baseline {attack['baselines']['label_only_ssim']:.3f}; a weaker attack "
                             f"proves nothing"))
    return out
