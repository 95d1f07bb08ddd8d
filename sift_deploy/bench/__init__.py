"""`sift-deploy bench BUNDLE`: latency, memory and transmitted-feature size of a bundle's edge artifact,
measured with the runtime the device will use, in the vocabulary of trtexec / LiteRT benchmark_model.

What is measured, and how:

- **Latency.** The bundle's runner (its own runtime, or a labelled stand-in with `--runtime`) is
  loaded (load time), run once (first inference), warmed up, then timed `iterations` times, one
  `time.perf_counter_ns` pair around each `infer` call, with the garbage collector off and a fixed
  thread count. Inputs are the bundle's real held-out images (`parity/reference.npz`), cycled batch
  by batch. Reported: p50/p90/p99/mean/std/min/max per call, per-image p50 and throughput.
- **Memory.** A fresh Python subprocess imports numpy, the runtime and the runner module (nothing
  else of ours, no torch), reads its RSS (baseline), resets the high-water mark, loads the artifact,
  runs inferences and reads `VmHWM` from /proc/self/status (`ru_maxrss` where /proc is missing).
  So the CLI's own imports do not count. The artifact's size on disk is reported too.
- **Transmitted features.** The artifact's features z of the reference images: bytes per image as
  fp32, fp16 and int8 (numel x dtype size; the int8 per-channel scales are sent once per session),
  their size after lossless compression of each image's message (zstd where importable, else zlib
  and lzma from the standard library; every message is decompressed and compared), and the accuracy
  cost of int8 on the wire, through the bundle's float cloud in onnxruntime.
- **Budgets.** The profile's `latency_p50_ms` and `peak_memory_mb` are promises to the device
  owner: when bench runs the bundle's own runtime at batch 1, an exceeded budget fails the run
  (exit 1). Under a stand-in runtime or another batch size they are shown but not checked (the
  numbers are not the ones the budget speaks about). A `--baseline` report from an earlier run of
  the same target, backend, precision, runtime, batch and threads is compared figure by figure; a
  p50 latency or peak memory more than `tolerance` percent above the baseline fails the run (exit 1).

Nothing here imports torch: bench runs on devices with only numpy and the runtime installed.

The package, one job per module: options (BenchOptions), timing (the one timing loop), statistics,
wire_sizes, provenance, memory_probe (run as `python -m sift_deploy.bench.memory_probe`), baseline,
budgets, render, and run (run_bench, which composes them). The report's typed form is
sift_deploy.documents.bench_report.BenchReport.
"""

from __future__ import annotations

import importlib

# Exported names are imported on first use: `python -m sift_deploy.bench.memory_probe` imports this
# package first, and the probe process must not load the rest of bench (its baseline RSS would grow).
_EXPORTS = {
    "BenchOptions": "options", "DEFAULT_ITERATIONS": "options", "DEFAULT_WARMUP": "options",
    "DEFAULT_TOLERANCE_PCT": "options",
    "run_bench": "run", "MEMORY_PROBE_RUNS": "run", "PARITY_REFERENCE": "run", "SCHEMA_VERSION": "run",
    "latency_stats": "statistics", "usable_cores": "statistics",
    "time_runner": "timing", "time_calls": "timing",
    "feature_sizes": "wire_sizes", "wire_accuracy": "wire_sizes",
    "probe_memory": "memory_probe",
    "load_baseline": "baseline", "check_baseline_identity": "baseline", "compare_baseline": "baseline",
    "check_budgets": "budgets", "failures_of": "budgets",
    "title": "render", "summary_rows": "render", "render_tables": "render", "render_markdown": "render",
    "write_text": "render",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
