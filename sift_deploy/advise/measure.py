"""One exported cut -> its figures, each measured the way the rest of sift-deploy measures it:

- edge and cloud latency: the bundle's runner (its target's runtime, or the labelled stand-in) and
  the cloud.onnx runner, through bench's timing loop at batch 1 on the bundle's reference images;
- bytes per image: bench's wire sizes (int8 with the bundle's per-channel scales, compressed);
- accuracy: the deployed edge's features of the whole test split, int8 on the wire, float cloud;
- leakage: check's decoder attack (one seed: the fast attack) on the deployed features, SSIM with
  its bootstrap interval over images, and dCor(x, z).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import wire
from ..backends import open_cloud_runner
from ..backends.base import run_in_batches
from ..bench.run import choose_threads, cycled_batches, reference_inputs
from ..bench.statistics import latency_stats
from ..bench.timing import time_runner
from ..bench.wire_sizes import feature_sizes
from ..check import CheckContext
from ..check.context import Progress
from ..check.decoder import summarise, train_attacker
from ..privacy.budget import AttackBudget

BATCH = 256


@dataclass(frozen=True)
class MeasureSettings:
    budget: AttackBudget
    seed: int
    iterations: int
    warmup: int
    data_dir: Path | None = None

    @property
    def decoder_seed(self) -> int:
        return self.seed + self.budget.decoder_seeds[0]


def _latency(runner, inputs: list[np.ndarray], settings: MeasureSettings, label: str) -> dict:
    """Time an inactive runner at batch 1; it stays active for the caller."""
    timing = time_runner(runner, inputs, settings.iterations, settings.warmup)
    stats = latency_stats(timing.calls.wall_ns)
    return {"p50_ms": stats["p50_ms"], "p90_ms": stats["p90_ms"], "mean_ms": stats["mean_ms"],
            "iterations": settings.iterations, "runtime": label}


def _runner_label(runner) -> str:
    return runner.name if runner.kind == "native" else f"{runner.name} ({runner.label})"


def _wire_bytes(z: np.ndarray, wire_params: dict) -> dict:
    sizes = feature_sizes(z, wire_params)
    codec = sizes["compression"]["codec"]
    return {"fp32": sizes["bytes_per_image"]["fp32"], "int8": sizes["bytes_per_image"]["int8"],
            "int8_compressed": sizes["compression"]["codecs"][codec]["per_image"]["int8"]["mean_bytes"], "codec": codec}


def _leakage(ctx: CheckContext, settings: MeasureSettings, progress: Progress) -> dict:
    from ..privacy.decoder import reconstruct
    from ..privacy.dependence import distance_correlation
    from ..privacy.metrics import score_images

    budget, seed = settings.budget, settings.decoder_seed
    side = ctx.deployed_side
    decoder = train_attacker(side.z_aux, ctx.x_aux, seed, budget, progress, f"deployed seed {seed}")
    scores = score_images(ctx.x_test, reconstruct(decoder, side.z_test))
    samples = min(budget.dcor_samples, ctx.test_count)
    return {"decoder": summarise([scores], budget, settings.seed).model_dump(),
            "dcor": distance_correlation(ctx.x_test[:samples], side.z_test[:samples], seed=settings.seed),
            "dcor_samples": samples}


def _accuracy(cloud, z: np.ndarray, wire_params: dict, labels: np.ndarray, settings: MeasureSettings) -> tuple[dict, float]:
    from ..privacy.metrics import bootstrap_mean

    correct_int8 = run_in_batches(cloud.infer, wire.roundtrip(z, wire_params), BATCH).argmax(1) == labels
    correct_fp32 = run_in_batches(cloud.infer, z, BATCH).argmax(1) == labels
    budget = settings.budget
    interval = bootstrap_mean(correct_int8.astype(np.float64), budget.confidence, budget.bootstrap_resamples, settings.seed)
    return interval.as_dict(), float(correct_fp32.mean())


def measure_bundle(bundle: Path, settings: MeasureSettings, progress: Progress) -> dict:
    """Latency, bytes, accuracy and leakage of one exported cut (the fields of a CutResult it owns)."""
    budget = settings.budget
    ctx = CheckContext.open(bundle, budget.aux_images, budget.test_images, settings.data_dir, progress=progress,
                            twin_required=False)
    manifest = ctx.manifest
    threads, _ = choose_threads(None, manifest["profile"], [])
    wire_params = manifest["features"]["wire_int8"]
    inputs, _, _ = reference_inputs(bundle, manifest)
    singles = cycled_batches(inputs, 1)

    progress("edge latency", 0, 1)
    runner = ctx.deployed_runner()
    try:
        edge = _latency(runner, singles, settings, _runner_label(runner))
        z_reference = run_in_batches(runner.infer, inputs, BATCH)
    finally:
        runner.deactivate()
    progress("edge latency", 1, 1)

    progress("cloud latency and accuracy", 0, 1)
    cloud = open_cloud_runner(bundle, manifest, threads)
    try:
        sent = [wire.roundtrip(z, wire_params) for z in cycled_batches(z_reference, 1)]
        cloud_latency = _latency(cloud, sent, settings, f"{_runner_label(cloud)} ({manifest['cloud_file']})")
        accuracy, accuracy_fp32 = _accuracy(cloud, ctx.deployed_side.z_all_test, wire_params, ctx.test_labels, settings)
    finally:
        cloud.deactivate()
    progress("cloud latency and accuracy", 1, 1)

    return {"z_shape": [int(s) for s in z_reference.shape[1:]], "bytes": _wire_bytes(z_reference, wire_params),
            "edge_latency": edge, "cloud_latency": cloud_latency, "accuracy_int8_wire": accuracy,
            "accuracy_fp32_wire": accuracy_fp32, "parity_passed": bool(manifest["parity"]["passed"]),
            "leakage": _leakage(ctx, settings, progress)}
