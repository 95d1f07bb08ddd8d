"""The gate: runs the stages in order on one context, composes their sections into the report,
and turns the report into a verdict with the bounds. A new attack is a new stage module (NAME,
SLOT: where its section goes in the report, run) plus one line in STAGES and its field in
documents/check_report.py."""

from __future__ import annotations

import time
from pathlib import Path

from .. import __version__
from ..documents.check_report import SCHEMA_VERSION, CheckReport
from ..privacy.budget import AttackBudget
from . import accuracy, decoder, information, twin_strength, whitebox
from .context import CheckContext, Progress, no_progress

STAGES = (
    accuracy,
    decoder,
    twin_strength,
    information,
    whitebox,
)


def header(ctx: CheckContext, budget: AttackBudget, seed: int) -> dict:
    """What the report says about the run before any stage: the bundle, the models, seed, budget, data."""
    manifest = ctx.manifest
    return {"schema_version": SCHEMA_VERSION, "tool_version": __version__, "bundle": str(ctx.bundle),
            "target": manifest["target"], "backend": manifest["backend"], "precision": manifest["precision"],
            "checkpoint": str(ctx.checkpoint.path), "twin": ctx.twin_source, "seed": seed, "budget": budget.as_dict(),
            "data": {**ctx.splits.info.as_dict(), "aux_used": ctx.aux_count, "test_used": ctx.test_count,
                     "budget_cuts": list(ctx.budget_cuts), "warnings": list(ctx.warnings)},
            "runtime": ctx.runtime_label}


def place(report: dict, slot: tuple[str, ...], section: dict) -> None:
    """Put a stage's section at `slot`; sections sharing a slot (the two decoder stages) merge."""
    *parents, key = slot
    for parent in parents:
        report = report.setdefault(parent, {})
    report.setdefault(key, {}).update(section)


class CheckInterrupted(Exception):
    """Ctrl-C or SIGTERM during the stages: `partial` is the report of the stages that finished."""

    def __init__(self, partial: dict):
        super().__init__("check interrupted")
        self.partial = partial


def run_stages(ctx: CheckContext, budget: AttackBudget, seed: int, progress: Progress, stages=STAGES) -> dict:
    """The measured sections of the report, keyed by slot, from each stage in turn. Interrupted, it
    raises CheckInterrupted with the sections done so far and the stage that was running."""
    sections: dict = {}
    for k, stage in enumerate(stages, 1):
        label = f"stage {k} of {len(stages)}: {stage.NAME}"
        progress(label, 0, 1)
        try:
            place(sections, stage.SLOT, stage.run(ctx, budget, seed, progress).model_dump())
        except KeyboardInterrupt:
            raise CheckInterrupted({**sections, "interrupted": {
                "during_stage": stage.NAME, "stages_done": [s.NAME for s in stages[:k - 1]],
                "stages_left": [s.NAME for s in stages[k - 1:]]}}) from None
        progress(label, 1, 1)
    return sections


def compose(ctx: CheckContext, budget: AttackBudget, seed: int, sections: dict, bounds: dict, seconds: float) -> dict:
    """The whole report as the dict that is written, validated as a CheckReport (whose fields give the key
    order). A report that does not validate is our bug, so it raises pydantic's error, not a SiftError."""
    report = {**header(ctx, budget, seed), **sections}
    report["bounds"] = evaluate_bounds(report, bounds)
    report["passed"] = all(b["passed"] for b in report["bounds"])
    report["seconds"] = seconds
    return CheckReport.model_validate(report).model_dump(exclude={"reports"})


def run_check(
    bundle: Path,
    bounds: dict,
    budget: AttackBudget,
    seed: int = 0,
    data_dir: Path | None = None,
    checkpoint: Path | None = None,
    twin: Path | None = None,
    progress: Progress | None = None,
    normalization=None,
    aux_split: float | None = None,
    on_warning=None,
) -> tuple[dict, dict]:
    """Measure everything; returns (report, rows of the reconstruction grid). The budget is fitted to the data
    (AttackBudget.fit_to_data); every cut and every data warning goes to `on_warning` before the attacks run."""
    progress = progress or no_progress
    started = time.perf_counter()
    ctx = CheckContext.open(bundle, budget.aux_images, budget.test_images, data_dir, checkpoint, twin, progress,
                            normalization, aux_split)
    budget, ctx.budget_cuts = budget.fit_to_data(ctx.aux_count, ctx.test_count)
    for message in (*ctx.warnings, *ctx.budget_cuts):
        (on_warning or (lambda _: None))(message)
    try:
        sections = run_stages(ctx, budget, seed, progress)
    except CheckInterrupted as stop:
        stop.partial = {**header(ctx, budget, seed), **stop.partial, "passed": None,
                        "seconds": round(time.perf_counter() - started, 1)}
        raise
    report = compose(ctx, budget, seed, sections, bounds, round(time.perf_counter() - started, 1))
    return report, ctx.reconstructions


def _bound(name: str, measured: float, limit: float, kind: str, detail: str) -> dict:
    ok = measured <= limit if kind == "max" else measured >= limit
    return {"name": name, "measured": float(measured), "limit": float(limit), "kind": kind, "passed": bool(ok),
            "detail": detail}


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
    detail = f"label-only baseline {attack['baselines']['label_only_ssim']:.3f}; a weaker attack proves nothing"
    if twin < bounds["attack"]["min_twin_ssim"]:
        data, budget = report.get("data") or {}, report.get("budget") or {}
        trained = (f"the decoder trained {budget['decoder_epochs']} epochs on {data['aux_used']} aux pairs: "
                   if "decoder_epochs" in budget and "aux_used" in data else "")
        detail += (f"; {trained}strengthen it with more aux pairs (--aux-split), --budget full, or a better-trained "
                   f"twin (--twin)")
    out.append(_bound("attack strength: SSIM against the unprotected twin", twin, bounds["attack"]["min_twin_ssim"],
                      "min", detail))
    return out
