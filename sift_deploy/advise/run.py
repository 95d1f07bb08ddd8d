"""run_advise: export every candidate cut for the target into one output folder, measure each, and
compose the AdviseReport (validated before it is returned)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import __version__
from ..checkpoint import load_checkpoint
from ..data.calibration import CALIBRATION_COUNT
from ..documents.advise_report import SCHEMA_VERSION, AdviseReport
from ..errors import SiftError
from ..export import export_bundle
from ..fileio import atomic_dir, check_writable
from ..privacy.budget import AttackBudget
from ..profiles import load_profile
from .candidates import candidate_cuts
from .measure import MeasureSettings, measure_bundle
from .recommend import end_to_end_ms, pareto_front, recommend, within_bound
from .render import write_outputs

DEFAULT_BANDWIDTH_MBPS = 10.0
BUNDLES = "bundles"

Progress = Callable[[str, int, int], None]
CutDone = Callable[[int, int, dict], None]


@dataclass
class AdviseOptions:
    target: str = "x86"
    checkpoint: Path | None = None  # None: the shipped reference
    arch: str | None = None
    bandwidth_mbps: float = DEFAULT_BANDWIDTH_MBPS
    max_leakage_ssim: float | None = None
    budget: AttackBudget = field(default_factory=lambda: AttackBudget.preset("fast"))
    cuts: list[str] | None = None  # None: every cut of the model
    output: Path | None = None  # None: advise/ARCH-TARGET
    data_dir: Path | None = None
    seed: int = 0
    latency_iterations: int = 300
    latency_warmup: int = 30
    calib_count: int = CALIBRATION_COUNT
    force: bool = False

    def validate(self) -> None:
        if self.bandwidth_mbps <= 0:
            raise SiftError(f"--bandwidth must be positive (megabits per second), got {self.bandwidth_mbps:g}")
        if self.max_leakage_ssim is not None and not 0 < self.max_leakage_ssim <= 1:
            raise SiftError(f"--max-leakage is an SSIM in (0, 1], got {self.max_leakage_ssim:g}")
        if self.latency_iterations < 1 or self.latency_warmup < 0:
            raise SiftError("latency iterations must be at least 1 and warm-up at least 0")


def _cut_result(candidate, bundle: Path, precision: str, figures: dict, options: AdviseOptions, seconds: float) -> dict:
    transfer, total = end_to_end_ms(figures["edge_latency"]["p50_ms"], figures["cloud_latency"]["p50_ms"],
                                    figures["bytes"]["int8_compressed"], options.bandwidth_mbps)
    return {"name": candidate.name, "default": candidate.default, "block_idx": candidate.block_idx, "bundle": str(bundle),
            "precision": precision, **figures, "transfer_ms": transfer, "end_to_end_ms": total, "pareto": False,
            "within_bound": within_bound(figures["leakage"]["decoder"]["ssim"]["high"], options.max_leakage_ssim),
            "seconds": round(seconds, 1)}


def _export_cut(options: AdviseOptions, profile, cut: str, bundle: Path, on_progress) -> tuple:
    """Export one cut at the profile's precision; where the exporter refuses that precision for this
    cut (e.g. no convolution worth quantizing in a one-block edge), at fp32, with a note saying so."""
    def export(precision: str | None):
        return export_bundle(options.checkpoint, options.target, precision, data_dir=options.data_dir, output=bundle,
                             seed=options.seed, calib_count=options.calib_count, parity_on_test_split=False,
                             arch=options.arch, split_at=cut, on_progress=on_progress)

    try:
        return export(None), None
    except SiftError as exc:
        if profile.default_precision == "fp32" or "fp32" not in profile.precisions:
            raise
        note = f"cut {cut}: the {profile.default_precision} export was refused ({exc}), so it was measured at fp32"
        return export("fp32"), note


def run_advise(options: AdviseOptions, progress: Progress | None = None, on_cut: CutDone | None = None) -> dict:
    """Export, measure and rank every candidate cut; write the bundles, advise.json and advise.png."""
    options.validate()
    progress = progress or (lambda *_: None)
    started = time.perf_counter()
    profile = load_profile(options.target)
    ckpt = load_checkpoint(options.checkpoint, arch=options.arch)
    candidates = candidate_cuts(ckpt.model, options.cuts)
    output = Path(options.output) if options.output else Path("advise") / f"{ckpt.spec.arch}-{profile.name}"
    check_writable(output, options.force)
    if output.exists() and not options.force:
        raise SiftError(f"{output} already exists; pass --force to replace it or choose another --output")
    settings = MeasureSettings(options.budget, options.seed, options.latency_iterations, options.latency_warmup,
                               options.data_dir)
    warnings = list(ckpt.warnings)
    cuts = []
    with atomic_dir(output, force=options.force) as tmp:
        for index, candidate in enumerate(candidates, 1):
            cut_started = time.perf_counter()
            label = f"cut {index}/{len(candidates)} {candidate.name}"
            bundle = tmp / BUNDLES / candidate.name.replace(".", "_")
            outcome, note = _export_cut(options, profile, candidate.name, bundle,
                                        lambda stage, done, total, label=label: progress(f"{label}: {stage}", done, total))
            warnings += [w for w in outcome.warnings + ([note] if note else []) if w not in warnings]
            figures = measure_bundle(bundle, settings, lambda stage, done, total, label=label:
                                     progress(f"{label}: {stage}", done, total))
            final = output / BUNDLES / bundle.name
            cuts.append(_cut_result(candidate, final, outcome.manifest["precision"], figures, options,
                                    time.perf_counter() - cut_started))
            if on_cut is not None:
                on_cut(index, len(candidates), cuts[-1])
        front = pareto_front([(c["end_to_end_ms"], c["leakage"]["decoder"]["ssim"]["mean"]) for c in cuts])
        for cut, on_front in zip(cuts, front):
            cut["pareto"] = on_front
        report = {
            "schema_version": SCHEMA_VERSION, "tool_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "checkpoint": {"path": str(ckpt.path), "sha256": ckpt.sha256, "arch": ckpt.spec.arch,
                           "official_format": ckpt.official},
            "target": profile.name, "backend": profile.backend, "precision": profile.default_precision,
            "settings": {"bandwidth_mbps": options.bandwidth_mbps, "max_leakage_ssim": options.max_leakage_ssim,
                         "seed": options.seed, "latency_iterations": options.latency_iterations,
                         "latency_warmup": options.latency_warmup, "budget": options.budget.as_dict(),
                         "decoder_seed": settings.decoder_seed,
                         "data": str(options.data_dir) if options.data_dir else "default dataset (Debian's Fashion-MNIST)"},
            "cuts": cuts,
            "recommendation": recommend(cuts, options.max_leakage_ssim),
            "warnings": warnings,
            "seconds": 0.0,
        }
        report["seconds"] = round(time.perf_counter() - started, 1)
        report = AdviseReport.model_validate(report).model_dump(mode="json")
        write_outputs(report, tmp)
    return report
