"""run_bench: one bench run of a bundle, composed from the package's parts, as a report (a dict that
matches sift_deploy.documents.bench_report.BenchReport)."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import __version__
from ..backends import get_backend, open_cloud_runner, open_runner
from ..backends.base import STAND_IN, Artifacts
from ..bundle import PARITY_REFERENCE, require_intact
from ..data.preprocess import model_input
from ..documents.bench_report import SCHEMA_VERSION
from ..errors import SiftError
from .baseline import check_baseline_identity, compare_baseline, load_baseline
from .budgets import check_budgets, failures_of
from .memory_probe import probe_memory
from .noise import load_average, timing_noise
from .options import BenchOptions
from .provenance import provenance
from .statistics import latency_stats, usable_cores
from .timing import TIMER, ProgressFn, RunnerTiming, time_calls, time_imports, time_runner, warm_up
from .wire_sizes import feature_sizes, wire_accuracy

MEMORY_PROBE_RUNS = 30
FEATURE_BATCH = 64


def reference_inputs(bundle_dir: Path, manifest: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The bundle's held-out images as model inputs, their labels (if any) and the float model's predictions."""
    path = bundle_dir / PARITY_REFERENCE
    if not path.is_file():
        raise SiftError(f"{path} is missing; bench times the bundle's reference images, re-export the bundle")
    with np.load(path, allow_pickle=False) as ref:
        images, labels, pred_ref = ref["images"], ref["labels"] if "labels" in ref else None, ref["pred_ref"]
    norm = manifest["input"]["normalization"]
    inputs = model_input(images, manifest["model"]["input_size"], norm["mean"], norm["std"])
    return inputs, labels, pred_ref


def cycled_batches(inputs: np.ndarray, batch: int) -> list[np.ndarray]:
    """Consecutive batches of real images, cycling through the set (tiling it when batch > images)."""
    n = len(inputs)
    count = max(1, n // batch)
    return [np.ascontiguousarray(inputs[np.arange(i * batch, (i + 1) * batch) % n]) for i in range(count)]


def choose_threads(requested: int | None, profile: dict, notes: list[str]) -> tuple[int, str]:
    """(threads, where the number came from): --threads, else the profile's, capped at the usable cores."""
    if requested is not None:
        return requested, "--threads"
    profile_threads = int(profile.get("threads", 1))
    threads = max(1, min(profile_threads, usable_cores()))
    if threads == profile_threads:
        return threads, "profile"
    notes.append(f"the profile asks for {profile_threads} threads; this machine has {usable_cores()} usable "
                 f"cores, so bench uses {threads}")
    return threads, f"profile ({profile_threads}) capped at the {threads} usable cores"


def latency_figures(timing: RunnerTiming, import_ms: float, batch: int) -> dict:
    stats = latency_stats(timing.calls.wall_ns)
    return {"runtime_import_ms": round(import_ms, 3), "load_ms": round(timing.load_ms, 3),
            "first_inference_ms": round(timing.first_inference_ms, 3),
            **{k: round(v, 4) for k, v in stats.items()},
            "per_image_p50_ms": round(stats["p50_ms"] / batch, 4),
            "throughput_images_per_s": round(batch / (stats["mean_ms"] / 1e3), 1) if stats["mean_ms"] > 0 else 0.0}


def features_on_the_wire(bundle_dir: Path, manifest: dict, z: np.ndarray, threads: int, pred_ref: np.ndarray,
                         labels: np.ndarray | None) -> dict:
    wire_params = manifest["features"]["wire_int8"]
    features = feature_sizes(z, wire_params)
    expected = list(manifest["features"]["shape"][1:])
    if features["shape"] != expected:
        raise SiftError(f"the artifact's features have shape {features['shape']}, the manifest says {expected}; "
                        "the bundle is inconsistent, re-export it")
    try:
        with open_cloud_runner(bundle_dir, manifest, threads) as cloud:
            features["wire_accuracy"] = {"cloud": f"float {manifest['cloud_file']} in {cloud.name}",
                                         **wire_accuracy(cloud, z, wire_params, pred_ref, labels)}
    except SiftError as exc:
        features["wire_accuracy"] = {"skipped": str(exc)}
    return features


FLOOR_PROBE_RUNS = (3, 20)  # warm-up, timed


def compute_floor(bundle_dir: Path, manifest: dict, runtime: str | None, threads: int, batch: int,
                  p50_ms: float) -> dict:
    """The bundle's compute floor here: edge MACs x batch / the peak MAC rate this runtime reaches at this
    precision on the bundle's probe conv (probe/, exported like the edge), and how far p50 is above it."""
    probe, macs = manifest.get("floor_probe"), manifest.get("model", {}).get("edge_macs")
    if not macs:
        return {"skipped": "the manifest has no edge MAC count (exported before sift-deploy recorded it); re-export"}
    if not probe or "file" not in probe:
        return {"skipped": (probe or {}).get("skipped", "the bundle has no floor probe; re-export it")}
    backend = get_backend(manifest["backend"])
    runner = backend.create_runner(Artifacts(folder=bundle_dir / probe["folder"]), probe["file"], probe["details"],
                                   threads, runtime)
    x = np.random.default_rng(0).standard_normal(tuple(probe["input_shape"])).astype(np.float32)
    try:
        runner.activate()
        call, prepare = runner.raw_call()
        warmup, runs = FLOOR_PROBE_RUNS
        warm_up(call, [prepare(x)], warmup)
        probe_p50_ms = float(np.median(time_calls(call, [prepare(x)], runs).wall_ns)) / 1e6
    finally:
        runner.deactivate()
    peak = probe["macs"] / (probe_p50_ms / 1e3)
    floor_ms = macs * batch / peak * 1e3
    return {"edge_macs": int(macs), "batch": batch, "probe": f"{probe['layer']} on {'x'.join(map(str, probe['input_shape']))}",
            "probe_macs": int(probe["macs"]), "probe_p50_ms": round(probe_p50_ms, 4),
            "peak_gmacs_per_s": round(peak / 1e9, 2), "floor_ms": round(floor_ms, 5),
            "p50_over_floor": round(p50_ms / floor_ms, 2) if floor_ms > 0 else None,
            "note": "the probe is timed with the runtime's own call (no runner conversions), after the edge's timed loop"}


def run_bench(bundle_dir: Path, options: BenchOptions | None = None, on_progress: ProgressFn | None = None) -> dict:
    """Benchmark a bundle. Raises SiftError for bad input; the report's 'passed' says whether budgets
    and the baseline hold."""
    options = options or BenchOptions()
    options.validate()
    progress = on_progress or (lambda *_: None)
    bundle_dir = Path(bundle_dir)
    progress("verifying the bundle", 0, 1)
    manifest = require_intact(bundle_dir)
    backend = manifest["backend"]
    baseline = load_baseline(options.baseline) if options.baseline is not None else None

    profile = manifest.get("profile", {}) or {}
    notes: list[str] = []
    threads, threads_source = choose_threads(options.threads, profile, notes)

    runner = open_runner(bundle_dir, manifest, threads=threads, runtime=options.runtime)
    kind = runner.kind  # the backend marks a runner of one of its stand-ins
    stand_in = kind == STAND_IN
    identity = {"bundle": {"target": str(manifest.get("target")), "backend": backend, "precision": manifest["precision"]},
                "runtime": {"kind": kind}, "settings": {"batch": options.batch, "threads": threads}}
    if baseline is not None:  # refuse an incomparable baseline before spending time on measurements
        check_baseline_identity(baseline, identity, options.baseline)

    inputs, labels, pred_ref = reference_inputs(bundle_dir, manifest)
    batches = cycled_batches(inputs, options.batch)
    import_ms = time_imports(get_backend(options.runtime if stand_in else backend).runtime_modules)
    progress("loading the artifact", 0, 1)
    load_before = load_average()
    try:
        timing = time_runner(runner, batches, options.iterations, options.warmup, progress)
        load_after = load_average()
        versions = {k: str(v) for k, v in runner.versions().items()}
        progress("measuring features", 0, 1)
        z = np.concatenate([runner.infer(inputs[i:i + FEATURE_BATCH]) for i in range(0, len(inputs), FEATURE_BATCH)])
        floor = compute_floor(bundle_dir, manifest, options.runtime if stand_in else None, threads, options.batch,
                              float(np.median(timing.calls.wall_ns)) / 1e6)
        op_profile = None
        if options.profile:
            progress("profiling ops", 0, 1)
            op_profile = runner.profile(batches[0], runs=options.profile_runs)
        label = runner.label
        if getattr(runner, "runtime", None):  # a runner that picks among runtimes says which one ran
            label = f"{label} via {runner.runtime}"
    finally:
        runner.deactivate()
    if stand_in:
        what = label.removeprefix(f"{STAND_IN}: ")  # the backend's label may say "stand-in" already
        notes.append(f"STAND-IN: {what}. These figures are not measurements of the {manifest.get('target')} device.")

    features = features_on_the_wire(bundle_dir, manifest, z, threads, pred_ref, labels)
    artifact = runner.loader.name
    if options.memory:
        progress("measuring memory (fresh process)", 0, 1)
        memory = probe_memory(backend, options.runtime if stand_in else None, bundle_dir, manifest["edge_file"],
                              manifest["export"]["details"], threads, batches[0],
                              runs=min(options.warmup + options.iterations, MEMORY_PROBE_RUNS))
    else:
        memory = {"skipped": "memory probe turned off"}

    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "sift-deploy", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"path": str(bundle_dir), "target": str(manifest.get("target")), "backend": backend,
                   "precision": manifest["precision"], "artifact": artifact,
                   "artifact_bytes": int((bundle_dir / artifact).stat().st_size),
                   "model": manifest.get("model", {}).get("arch"), "input_size": manifest.get("model", {}).get("input_size")},
        "runtime": {"name": runner.name, "kind": kind, "label": label, "versions": versions},
        "settings": {"iterations": options.iterations, "warmup": options.warmup, "threads": threads,
                     "threads_source": threads_source, "batch": options.batch,
                     "inputs": f"{PARITY_REFERENCE}: {len(inputs)} real held-out images, cycled in "
                               f"{len(batches)} distinct batch(es) of {options.batch}",
                     "timer": TIMER, "tolerance_pct": options.tolerance_pct},
        "latency": latency_figures(timing, import_ms, options.batch),
        "memory": memory,
        "features": features,
        "provenance": provenance(threads, versions),
        "torch_imported": sys.modules.get("torch") is not None,
        "notes": notes,
        "floor": floor,
    }
    report["timing_noise"] = timing_noise(load_before, load_after, usable_cores(), threads,
                                          report["latency"]["p50_ms"], report["latency"]["p99_ms"])
    if op_profile is not None:
        report["profile"] = op_profile
    report["budgets"] = check_budgets(profile, report)
    report["baseline"] = (compare_baseline(baseline, report, options.tolerance_pct, options.baseline)
                          if baseline is not None else None)
    report["failures"] = failures_of(report)
    report["passed"] = not report["failures"]
    return report
