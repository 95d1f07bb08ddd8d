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
"""

from __future__ import annotations

import gc
import json
import lzma
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__, wire
from ..backends import get_backend, open_cloud_runner, open_runner
from ..backends.base import NATIVE, STAND_IN
from ..bundle import PARITY_REFERENCE, require_intact
from ..data.preprocess import model_input
from ..errors import SiftError

SCHEMA_VERSION = 1
DEFAULT_ITERATIONS = 500
DEFAULT_WARMUP = 50
DEFAULT_TOLERANCE_PCT = 10.0
MEMORY_PROBE_RUNS = 30
STAND_IN_KIND = STAND_IN
NATIVE_KIND = NATIVE
MIB = 1024.0 * 1024.0

ProgressFn = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- options


@dataclass
class BenchOptions:
    iterations: int = DEFAULT_ITERATIONS
    warmup: int = DEFAULT_WARMUP
    threads: int | None = None  # None: the profile's threads, capped at the usable cores
    batch: int = 1
    runtime: str | None = None  # None: the bundle's own runtime; "onnxruntime": the jetson stand-in
    baseline: Path | None = None
    tolerance_pct: float = DEFAULT_TOLERANCE_PCT
    memory: bool = True  # the subprocess memory probe (tests may turn it off)

    def validate(self) -> None:
        if self.iterations < 1:
            raise SiftError(f"--iterations must be at least 1 (got {self.iterations})")
        if self.warmup < 0:
            raise SiftError(f"--warmup must be 0 or more (got {self.warmup})")
        if self.batch < 1:
            raise SiftError(f"--batch must be at least 1 (got {self.batch})")
        if self.threads is not None and self.threads < 1:
            raise SiftError(f"--threads must be at least 1 (got {self.threads})")
        if not self.tolerance_pct >= 0:
            raise SiftError(f"--tolerance must be a percentage of 0 or more (got {self.tolerance_pct})")


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- statistics


def latency_stats(times_ns: np.ndarray) -> dict:
    """p50/p90/p99 (linear interpolation), mean, std (ddof 1), min, max of per-call times, in ms."""
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
        "mean_ms": float(ms.mean()), "std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "min_ms": float(ms.min()), "max_ms": float(ms.max()),
    }


# --------------------------------------------------------------------------- memory probe

# Runs in a fresh interpreter: numpy, the runtime and one runner module only. Prints one JSON line.
PROBE_SOURCE = r'''
import importlib, json, resource, sys, time
spec = json.loads(sys.argv[1])

def status_kib(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None

def maxrss_kib():
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v // 1024 if sys.platform == "darwin" else v

out = {}
import numpy as np
started = time.perf_counter_ns()
for alternatives in spec["runtime_modules"]:
    for name in alternatives:
        try:
            importlib.import_module(name)
            break
        except Exception:
            continue
out["runtime_import_ms"] = (time.perf_counter_ns() - started) / 1e6
from sift_deploy.backends import get_backend
from sift_deploy.backends.base import Artifacts
backend = get_backend(spec["backend"])
out["baseline_kib"] = status_kib("VmRSS") or maxrss_kib()
out["import_hwm_kib"] = status_kib("VmHWM") or maxrss_kib()
try:  # reset the high-water mark to the current RSS (Linux >= 4.0), so the peak is load + inference only
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    out["hwm_reset"] = status_kib("VmHWM") is not None
except OSError:
    out["hwm_reset"] = False
x = np.load(spec["inputs"])
try:
    runner = backend.create_runner(Artifacts(folder=spec["bundle_dir"]), spec["edge_file"], spec["details"],
                                   spec["threads"], spec["runtime"])
    started = time.perf_counter_ns()
    runner.activate()
    out["load_ms"] = (time.perf_counter_ns() - started) / 1e6
    out["after_load_kib"] = status_kib("VmRSS")
    for _ in range(spec["runs"]):
        runner.infer(x)
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}))
    sys.exit(3)
out["after_inference_kib"] = status_kib("VmRSS")
out["peak_kib"] = status_kib("VmHWM") or maxrss_kib()
out["peak_source"] = "VmHWM" if status_kib("VmHWM") is not None else "ru_maxrss"
out["runs"] = spec["runs"]
out["torch_imported"] = sys.modules.get("torch") is not None
out["modules_loaded"] = len(sys.modules)
print(json.dumps(out))
'''


def probe_memory(backend: str, runtime: str | None, bundle_dir: Path, edge_file: str, details: dict, threads: int,
                 inputs: np.ndarray, runs: int, runtime_modules=(), timeout_s: float = 600.0) -> dict:
    """Peak RSS of loading `edge_file` and running `runs` inferences on `inputs`, in a fresh subprocess.

    `backend` names the bundle's backend; `runtime` a stand-in runtime, or None for its own.
    Returns MiB figures: baseline (python + numpy + runtime + runner module), after load, peak.
    """
    with tempfile.TemporaryDirectory(prefix="sift-bench-") as tmp:
        inputs_path = Path(tmp) / "inputs.npy"
        np.save(inputs_path, np.ascontiguousarray(inputs, dtype=np.float32))
        spec = {"backend": backend, "runtime": runtime, "bundle_dir": str(Path(bundle_dir).resolve()),
                "edge_file": edge_file, "details": details, "threads": int(threads), "inputs": str(inputs_path),
                "runs": int(runs), "runtime_modules": [list(a) for a in runtime_modules]}
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.run([sys.executable, "-c", PROBE_SOURCE, json.dumps(spec)], capture_output=True,
                                  text=True, env=env, timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise SiftError(f"the memory probe did not finish within {timeout_s:.0f} s") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise SiftError(f"the memory probe subprocess failed (exit {proc.returncode}): {tail}")
    raw = json.loads(lines[-1])
    if "error" in raw:
        raise SiftError(f"the memory probe could not run the artifact: {raw['error']}")
    to_mib = lambda kib: None if kib is None else round(kib / 1024.0, 2)  # noqa: E731
    peak = to_mib(raw["peak_kib"])
    baseline = to_mib(raw["baseline_kib"])
    return {
        "method": f"fresh subprocess (numpy + runtime + the {backend} runner); peak = {raw['peak_source']}"
                  + (" after resetting it past the imports (clear_refs 5)" if raw["hwm_reset"] else " (process lifetime)"),
        "baseline_rss_mb": baseline,
        "after_load_rss_mb": to_mib(raw.get("after_load_kib")),
        "after_inference_rss_mb": to_mib(raw.get("after_inference_kib")),
        "peak_rss_mb": peak,
        "peak_over_baseline_mb": round(peak - baseline, 2) if peak is not None and baseline is not None else None,
        "hwm_reset": bool(raw["hwm_reset"]),
        "runtime_import_ms": round(raw["runtime_import_ms"], 3),
        "cold_load_ms": round(raw["load_ms"], 3),
        "inferences": int(raw["runs"]),
        "torch_imported": bool(raw["torch_imported"]),
    }


# --------------------------------------------------------------------------- features on the wire


def _codecs() -> list[tuple[str, str, Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    """(name, setting, compress, decompress): zstd where importable, then zlib and lzma (stdlib)."""
    out = []
    try:
        import zstandard

        cctx, dctx = zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()
        out.append(("zstd", "level 19 (zstandard)", cctx.compress, dctx.decompress))
    except ImportError:
        try:
            from compression import zstd  # Python >= 3.14

            out.append(("zstd", "level 19 (compression.zstd)", lambda b: zstd.compress(b, level=19), zstd.decompress))
        except ImportError:
            pass
    out.append(("zlib", "level 9", lambda b: zlib.compress(b, 9), zlib.decompress))
    # A 64 KiB dictionary: messages are a few KiB, and preset 9's 64 MiB dictionary costs ~0.2 s per call.
    # (preset 9e compresses these messages no smaller than preset 6 and takes 3x longer)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 16}]
    out.append(("lzma", "raw LZMA2, preset 6, 64 KiB dictionary",
                lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=filters),
                lambda b: lzma.decompress(b, format=lzma.FORMAT_RAW, filters=filters)))
    return out


def wire_messages(z: np.ndarray, wire_params: dict) -> dict[str, list[bytes]]:
    """Each image's features as the bytes that would be sent, per wire dtype."""
    q = wire.quantize(z, wire_params)
    return {
        "fp32": [row.tobytes() for row in np.ascontiguousarray(z, np.float32)],
        "fp16": [row.tobytes() for row in np.ascontiguousarray(z.astype(np.float16))],
        "int8": [row.tobytes() for row in np.ascontiguousarray(q)],
    }


def feature_sizes(z: np.ndarray, wire_params: dict) -> dict:
    """Bytes per image of z on the wire, raw and compressed (measured on these features, round-tripped)."""
    numel = int(np.prod(z.shape[1:]))
    raw = {"fp32": numel * 4, "fp16": numel * 2, "int8": numel * 1}
    messages = wire_messages(z, wire_params)
    for dtype, msgs in messages.items():
        assert all(len(m) == raw[dtype] for m in msgs), "wire message size differs from numel x dtype size"
    codecs = {}
    for name, setting, compress, decompress in _codecs():
        per_dtype = {}
        for dtype, msgs in messages.items():
            sizes = []
            for m in msgs:
                packed = compress(m)
                if decompress(packed) != m:
                    raise RuntimeError(f"{name} did not round-trip a {dtype} feature message")  # a bug, not user error
                sizes.append(len(packed))
            sizes = np.asarray(sizes)
            per_dtype[dtype] = {"mean_bytes": float(sizes.mean()), "p50_bytes": float(np.median(sizes)),
                                "max_bytes": int(sizes.max()), "ratio_to_raw": float(sizes.mean() / raw[dtype])}
        codecs[name] = {"setting": setting, "per_image": per_dtype, "round_trip": True}
    headline = "zstd" if "zstd" in codecs else "zlib"
    scales = len(wire_params["scales"])
    return {
        "shape": [int(s) for s in z.shape[1:]],
        "numel": numel,
        "bytes_per_image": raw,
        "int8_wire": {"dtype": wire_params["dtype"], "scheme": wire_params["scheme"], "channels": scales,
                      "scales_bytes_once": scales * 4,
                      "note": "per-channel fp32 scales are sent once per session, not per image (zero-points are 0)"},
        "compression": {"codec": headline, "images": int(len(z)), "measured_on": "the artifact's features of the "
                        "bundle's reference images, each image's message compressed on its own", "codecs": codecs},
    }


def wire_accuracy(cloud, z: np.ndarray, wire_params: dict, pred_ref: np.ndarray, labels: np.ndarray | None,
                  batch: int = 256) -> dict:
    """Top-1 through the float cloud: deployed z sent as fp32 vs sent as int8 (per-channel) on the wire."""
    def run(v):
        return np.concatenate([cloud.infer(v[i:i + batch]) for i in range(0, len(v), batch)]).argmax(1)

    pred_float = run(z)
    pred_int8 = run(wire.roundtrip(z, wire_params))
    out = {
        "images": int(len(z)),
        "top1_agreement_int8_vs_fp32_wire": float((pred_int8 == pred_float).mean()),
        "top1_agreement_int8_wire_vs_float_model": float((pred_int8 == pred_ref).mean()),
        "top1_agreement_fp32_wire_vs_float_model": float((pred_float == pred_ref).mean()),
    }
    if labels is not None:
        out["accuracy_fp32_wire"] = float((pred_float == labels).mean())
        out["accuracy_int8_wire"] = float((pred_int8 == labels).mean())
        out["accuracy_cost_points"] = round((out["accuracy_fp32_wire"] - out["accuracy_int8_wire"]) * 100, 4)
    return out


# --------------------------------------------------------------------------- provenance


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def _cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in text.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def _os_release() -> str:
    text = _read("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def _l4t_release() -> str | None:
    """'R36.4.0' from /etc/nv_tegra_release ('# R36 (release), REVISION: 4.0, ...'), where present."""
    text = _read("/etc/nv_tegra_release")
    if not text:
        return None
    first = text.splitlines()[0]
    try:
        major = first.split("R", 1)[1].split()[0]
        revision = first.split("REVISION:", 1)[1].split(",")[0].strip()
        return f"R{major}.{revision}"
    except IndexError:
        return first.lstrip("# ")


def provenance(threads: int, versions: dict) -> dict:
    device_model = _read("/proc/device-tree/model")  # Raspberry Pi, Jetson
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "device_model": device_model or _cpu_model() or "unknown",
        "device_model_source": "/proc/device-tree/model" if device_model else "/proc/cpuinfo",
        "cpu_model": _cpu_model(),
        "machine": platform.machine(),
        "cores_online": os.cpu_count(),
        "cores_usable": usable_cores(),
        "cpu_governor": governor or "not readable",
        "os": _os_release(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "runtime_versions": versions,
        "threads": threads,
        "l4t_release": _l4t_release(),
        "nv_tegra_release": (_read("/etc/nv_tegra_release") or "").splitlines()[0] if _read("/etc/nv_tegra_release") else None,
        "load_average_1_5_15": load,
    }


# --------------------------------------------------------------------------- report schema and validation

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_STR = {"type": "string"}
_LAT_KEYS = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms", "max_ms")

REPORT_SCHEMA: dict = {
    "type": "object",
    "required": ["schema_version", "tool", "created", "bundle", "runtime", "settings", "latency", "memory",
                 "features", "provenance", "budgets", "baseline", "failures", "passed"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "tool": {"type": "object", "required": ["name", "version"], "properties": {"name": _STR, "version": _STR}},
        "created": _STR,
        "bundle": {"type": "object", "required": ["path", "target", "backend", "precision", "artifact", "artifact_bytes"],
                   "properties": {"path": _STR, "target": _STR, "backend": {"enum": ["onnxruntime", "litert", "tensorrt"]},
                                  "precision": {"enum": ["fp32", "fp16", "int8"]}, "artifact": _STR,
                                  "artifact_bytes": {"type": "integer", "minimum": 0}}},
        "runtime": {"type": "object", "required": ["name", "kind", "label", "versions"],
                    "properties": {"name": _STR, "kind": {"enum": [NATIVE_KIND, STAND_IN_KIND]}, "label": _STR,
                                   "versions": {"type": "object", "additionalProperties": _STR}}},
        "settings": {"type": "object", "required": ["iterations", "warmup", "threads", "batch", "inputs", "timer"],
                     "properties": {"iterations": {"type": "integer", "minimum": 1},
                                    "warmup": {"type": "integer", "minimum": 0},
                                    "threads": {"type": "integer", "minimum": 1},
                                    "batch": {"type": "integer", "minimum": 1}, "inputs": _STR, "timer": _STR}},
        "latency": {"type": "object",
                    "required": ["load_ms", "first_inference_ms", *_LAT_KEYS, "per_image_p50_ms", "throughput_images_per_s"],
                    "properties": {"load_ms": _NUM, "first_inference_ms": _NUM,
                                   **{k: {"type": "number", "minimum": 0} for k in _LAT_KEYS},
                                   "per_image_p50_ms": _NUM, "throughput_images_per_s": _NUM}},
        "memory": {"type": "object",
                   "properties": {"skipped": _STR, "baseline_rss_mb": _NUM_OR_NULL, "peak_rss_mb": _NUM_OR_NULL,
                                  "after_load_rss_mb": _NUM_OR_NULL, "peak_over_baseline_mb": _NUM_OR_NULL,
                                  "torch_imported": {"type": "boolean"}, "method": _STR}},
        "features": {"type": "object", "required": ["shape", "numel", "bytes_per_image", "int8_wire", "compression",
                                                    "wire_accuracy"],
                     "properties": {
                         "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
                         "numel": {"type": "integer", "minimum": 1},
                         "bytes_per_image": {"type": "object", "required": ["fp32", "fp16", "int8"],
                                             "additionalProperties": {"type": "integer", "minimum": 1}},
                         "int8_wire": {"type": "object", "required": ["dtype", "scales_bytes_once"]},
                         "compression": {"type": "object", "required": ["codec", "images", "codecs"],
                                         "properties": {"codec": {"enum": ["zstd", "zlib", "lzma"]},
                                                        "images": {"type": "integer", "minimum": 1},
                                                        "codecs": {"type": "object"}}},
                         "wire_accuracy": {"type": "object"}}},
        "provenance": {"type": "object", "required": ["device_model", "cores_online", "cpu_governor", "os", "python",
                                                      "runtime_versions", "threads"]},
        "budgets": {"type": "object", "required": ["checked", "items"],
                    "properties": {"checked": {"type": "boolean"}, "reason": _STR,
                                   "items": {"type": "array", "items": {
                                       "type": "object", "required": ["figure", "limit", "measured", "unit", "passed"],
                                       "properties": {"figure": _STR, "limit": _NUM, "measured": _NUM_OR_NULL,
                                                      "unit": _STR, "passed": {"type": ["boolean", "null"]}}}}}},
        "baseline": {"type": ["object", "null"],
                     "properties": {"path": _STR, "tolerance_pct": _NUM, "items": {"type": "array", "items": {
                         "type": "object", "required": ["figure", "baseline", "measured", "change_pct", "regressed"],
                         "properties": {"figure": _STR, "baseline": _NUM_OR_NULL, "measured": _NUM_OR_NULL,
                                        "change_pct": _NUM_OR_NULL, "regressed": {"type": "boolean"}}}}}},
        "failures": {"type": "array", "items": _STR},
        "notes": {"type": "array", "items": _STR},
        "passed": {"type": "boolean"},
    },
}

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is_type(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def schema_errors(value, schema: dict, where: str = "$") -> list[str]:
    """A small JSON-Schema subset validator: type, const, enum, required, properties,
    additionalProperties (schema or bool), items, minimum. Returns problems, one sentence each."""
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        return [f"{where} is {value!r}, expected {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where} is {value!r}, expected one of {schema['enum']}"]
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return [f"{where} is {type(value).__name__}, expected {' or '.join(names)}"]
    if "minimum" in schema and _is_type(value, "number") and value < schema["minimum"]:
        errors.append(f"{where} is {value}, below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where} lacks '{key}'")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where} has the unexpected field '{key}'")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


# --------------------------------------------------------------------------- budgets and baseline

IDENTITY = (("target", ("bundle", "target")), ("backend", ("bundle", "backend")),
            ("precision", ("bundle", "precision")), ("runtime", ("runtime", "kind")),
            ("batch", ("settings", "batch")), ("threads", ("settings", "threads")))
COMPARED = (("latency p50", ("latency", "p50_ms"), "ms"), ("peak memory", ("memory", "peak_rss_mb"), "MB"))


def _get(doc: dict, path: tuple[str, ...]):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def load_baseline(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SiftError(f"baseline {path} does not exist; write one with `sift-deploy bench BUNDLE --json {path}`")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SiftError(f"baseline {path} is not JSON ({exc}); pass a report written by `sift-deploy bench --json`") from exc
    found = doc.get("schema_version") if isinstance(doc, dict) else None
    if found != SCHEMA_VERSION:
        raise SiftError(f"baseline {path} has schema_version {found}; this sift-deploy compares bench reports of "
                        f"schema_version {SCHEMA_VERSION}, so re-run the baseline with this version")
    problems = schema_errors(doc, REPORT_SCHEMA)
    if problems:
        raise SiftError(f"baseline {path} is not a valid bench report: {problems[0]}")
    return doc


def check_baseline_identity(baseline: dict, report: dict, path: Path) -> None:
    """A baseline must describe the same configuration, else comparing figures means nothing."""
    for name, key in IDENTITY:
        theirs, ours = _get(baseline, key), _get(report, key)
        if theirs != ours:
            raise SiftError(f"baseline {path} was measured with {name} {theirs!r}, this run with {ours!r}; "
                            f"compare runs of the same target, backend, precision, runtime, batch and threads")


def compare_baseline(baseline: dict, report: dict, tolerance_pct: float, path: Path) -> dict:
    items = []
    for figure, key, unit in COMPARED:
        old, new = _get(baseline, key), _get(report, key)
        if old is None or new is None or old <= 0:
            items.append({"figure": figure, "unit": unit, "baseline": old, "measured": new, "change_pct": None,
                          "regressed": False, "note": "not measured in both runs"})
            continue
        change = (new - old) / old * 100.0
        items.append({"figure": figure, "unit": unit, "baseline": old, "measured": new, "change_pct": round(change, 2),
                      "regressed": change > tolerance_pct})
    return {"path": str(path), "created": baseline.get("created"), "tolerance_pct": tolerance_pct, "items": items}


def check_budgets(profile: dict, report: dict) -> dict:
    budgets = (profile or {}).get("budgets", {}) or {}
    wanted = (("latency p50", "latency_p50_ms", ("latency", "p50_ms"), "ms"),
              ("peak memory", "peak_memory_mb", ("memory", "peak_rss_mb"), "MB"))
    reason = None
    if report["runtime"]["kind"] != NATIVE_KIND:
        reason = ("not checked: a stand-in runtime does not measure the device the budgets are for")
    elif report["settings"]["batch"] != 1:
        reason = "not checked: the profile's budgets are for batch 1"
    items = []
    for figure, name, key, unit in wanted:
        if name not in budgets:
            continue
        measured = _get(report, key)
        passed = None if reason is not None or measured is None else bool(measured <= budgets[name])
        items.append({"figure": figure, "budget": name, "limit": float(budgets[name]), "measured": measured,
                      "unit": unit, "passed": passed})
    out = {"checked": reason is None, "profile": (profile or {}).get("name"), "items": items}
    if reason is not None:
        out["reason"] = reason
    return out


def failures_of(report: dict) -> list[str]:
    failures = []
    for item in report["budgets"]["items"]:
        if item["passed"] is False:
            over = (item["measured"] - item["limit"]) / item["limit"] * 100
            failures.append(f"{item['figure']} {item['measured']:.3f} {item['unit']} exceeds the profile budget "
                            f"{item['budget']} = {item['limit']:g} {item['unit']} by {over:.0f}%")
    if report["baseline"]:
        tol = report["baseline"]["tolerance_pct"]
        for item in report["baseline"]["items"]:
            if item["regressed"]:
                failures.append(f"{item['figure']} regressed: {item['measured']:.3f} {item['unit']} vs baseline "
                                f"{item['baseline']:.3f} {item['unit']} (+{item['change_pct']:.1f}%, tolerance {tol:g}%)")
    return failures


# --------------------------------------------------------------------------- the benchmark


def _reference(bundle_dir: Path, manifest: dict) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    path = bundle_dir / PARITY_REFERENCE
    if not path.is_file():
        raise SiftError(f"{path} is missing; bench times the bundle's reference images, re-export the bundle")
    with np.load(path, allow_pickle=False) as ref:
        images, labels, pred_ref = ref["images"], ref["labels"] if "labels" in ref else None, ref["pred_ref"]
    norm = manifest["input"]["normalization"]
    inputs = model_input(images, manifest["model"]["input_size"], norm["mean"], norm["std"])
    return inputs, labels, pred_ref


def _batches(inputs: np.ndarray, batch: int) -> list[np.ndarray]:
    """Consecutive batches of real images, cycling through the set (tiling it when batch > images)."""
    n = len(inputs)
    count = max(1, n // batch)
    return [np.ascontiguousarray(inputs[np.arange(i * batch, (i + 1) * batch) % n]) for i in range(count)]


def _import_runtime(modules) -> float:
    started = time.perf_counter_ns()
    for alternatives in modules:
        for name in alternatives:
            try:
                __import__(name)
                break
            except Exception:  # noqa: BLE001 - the runner's load() reports a missing runtime with its install hint
                continue
    return (time.perf_counter_ns() - started) / 1e6


def time_runner(runner, batches: list[np.ndarray], iterations: int, warmup: int,
                on_progress: ProgressFn | None = None) -> dict:
    """load / first inference / warm-up / timed loop of an unloaded runner; per-call ns in 'times_ns'."""
    progress = on_progress or (lambda *_: None)
    started = time.perf_counter_ns()
    runner.activate()
    load_ms = (time.perf_counter_ns() - started) / 1e6
    started = time.perf_counter_ns()
    runner.infer(batches[0])
    first_ms = (time.perf_counter_ns() - started) / 1e6
    progress("warm-up", 0, warmup)
    for i in range(warmup):
        runner.infer(batches[i % len(batches)])
    progress("warm-up", warmup, warmup)
    times = np.empty(iterations, dtype=np.int64)
    infer, clock, nb = runner.infer, time.perf_counter_ns, len(batches)
    chunk = max(1, iterations // 20)
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        done = 0
        while done < iterations:
            end = min(iterations, done + chunk)
            for i in range(done, end):
                x = batches[i % nb]
                t0 = clock()
                infer(x)
                times[i] = clock() - t0
            done = end
            progress("timing", done, iterations)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"load_ms": load_ms, "first_inference_ms": first_ms, "times_ns": times}


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
    profile_threads = int(profile.get("threads", 1))
    notes: list[str] = []
    if options.threads is not None:
        threads = options.threads
        threads_source = "--threads"
    else:
        threads = max(1, min(profile_threads, usable_cores()))
        threads_source = "profile" if threads == profile_threads else \
            f"profile ({profile_threads}) capped at the {threads} usable cores"
        if threads != profile_threads:
            notes.append(f"the profile asks for {profile_threads} threads; this machine has {usable_cores()} usable "
                         f"cores, so bench uses {threads}")

    runner = open_runner(bundle_dir, manifest, threads=threads, runtime=options.runtime)
    stand_in = options.runtime is not None and options.runtime != backend
    kind = STAND_IN_KIND if stand_in else NATIVE_KIND
    runtime_name = options.runtime if stand_in else backend
    runtime_modules = get_backend(runtime_name).runtime_modules
    identity = {"bundle": {"target": str(manifest.get("target")), "backend": backend, "precision": manifest["precision"]},
                "runtime": {"kind": kind}, "settings": {"batch": options.batch, "threads": threads}}
    if baseline is not None:  # refuse an incomparable baseline before spending time on measurements
        check_baseline_identity(baseline, identity, options.baseline)

    inputs, labels, pred_ref = _reference(bundle_dir, manifest)
    batches = _batches(inputs, options.batch)
    import_ms = _import_runtime(runtime_modules)
    progress("loading the artifact", 0, 1)
    try:
        timing = time_runner(runner, batches, options.iterations, options.warmup, progress)
        stats = latency_stats(timing["times_ns"])
        versions = runner.versions()
        progress("measuring features", 0, 1)
        z = np.concatenate([runner.infer(inputs[i:i + 64]) for i in range(0, len(inputs), 64)])
        label = runner.label
        if getattr(runner, "runtime", None):  # a runner that picks among runtimes says which one ran
            label = f"{label} via {runner.runtime}"
    finally:
        runner.deactivate()
    if stand_in:
        notes.append(f"STAND-IN: {label}. These figures are not measurements of the {manifest.get('target')} device.")
    latency = {"runtime_import_ms": round(import_ms, 3), "load_ms": round(timing["load_ms"], 3),
               "first_inference_ms": round(timing["first_inference_ms"], 3),
               **{k: round(v, 4) for k, v in stats.items()},
               "per_image_p50_ms": round(stats["p50_ms"] / options.batch, 4),
               "throughput_images_per_s": round(options.batch / (stats["mean_ms"] / 1e3), 1) if stats["mean_ms"] > 0 else 0.0}

    wire_params = manifest["features"]["wire_int8"]
    features = feature_sizes(z, wire_params)
    expected = [s for s in manifest["features"]["shape"][1:]]
    if features["shape"] != expected:
        raise SiftError(f"the artifact's features have shape {features['shape']}, the manifest says {expected}; "
                        "the bundle is inconsistent, re-export it")
    try:
        with open_cloud_runner(bundle_dir, manifest, threads) as cloud:
            features["wire_accuracy"] = {"cloud": "float cloud.onnx in onnxruntime",
                                         **wire_accuracy(cloud, z, wire_params, pred_ref, labels)}
    except SiftError as exc:
        features["wire_accuracy"] = {"skipped": str(exc)}

    artifact = runner.loader.name
    memory: dict
    if options.memory:
        progress("measuring memory (fresh process)", 0, 1)
        memory = probe_memory(backend, options.runtime if stand_in else None, bundle_dir, manifest["edge_file"],
                              manifest["export"]["details"], threads, batches[0],
                              runs=min(options.warmup + options.iterations, MEMORY_PROBE_RUNS),
                              runtime_modules=runtime_modules)
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
        "runtime": {"name": runner.name, "kind": kind, "label": label, "versions": {k: str(v) for k, v in versions.items()}},
        "settings": {"iterations": options.iterations, "warmup": options.warmup, "threads": threads,
                     "threads_source": threads_source, "batch": options.batch,
                     "inputs": f"{PARITY_REFERENCE}: {len(inputs)} real held-out images, cycled in "
                               f"{len(batches)} distinct batch(es) of {options.batch}",
                     "timer": "time.perf_counter_ns around each infer call, gc disabled in the timed loop",
                     "tolerance_pct": options.tolerance_pct},
        "latency": latency,
        "memory": memory,
        "features": features,
        "provenance": provenance(threads, {k: str(v) for k, v in versions.items()}),
        "torch_imported": sys.modules.get("torch") is not None,
        "notes": notes,
    }
    report["budgets"] = check_budgets(profile, report)
    if baseline is not None:
        report["baseline"] = compare_baseline(baseline, report, options.tolerance_pct, options.baseline)
    else:
        report["baseline"] = None
    report["failures"] = failures_of(report)
    report["passed"] = not report["failures"]
    return report


# --------------------------------------------------------------------------- rendering


def _fmt(value, digits: int = 3, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()


def title(report: dict) -> str:
    b, r = report["bundle"], report["runtime"]
    stand_in = " [STAND-IN]" if r["kind"] == STAND_IN_KIND else ""
    return (f"{b['target']} / {b['backend']} {b['precision']} ({b['artifact']}) on {r['name']}{stand_in}, "
            f"batch {report['settings']['batch']}, {report['settings']['threads']} thread(s)")


def summary_rows(report: dict) -> list[tuple[str, str, str]]:
    """(section, figure, value) rows shared by the terminal table and the Markdown."""
    lat, mem, feat = report["latency"], report["memory"], report["features"]
    s = report["settings"]
    rows = [
        ("latency", f"p50 / p90 / p99 per call ({s['iterations']} runs, {s['warmup']} warm-up)",
         f"{lat['p50_ms']:.3f} / {lat['p90_ms']:.3f} / {lat['p99_ms']:.3f} ms"),
        ("latency", "mean ± std", f"{lat['mean_ms']:.3f} ± {lat['std_ms']:.3f} ms"),
        ("latency", "min / max", f"{lat['min_ms']:.3f} / {lat['max_ms']:.3f} ms"),
        ("latency", "per image (p50) / throughput",
         f"{lat['per_image_p50_ms']:.4f} ms / {lat['throughput_images_per_s']:,.0f} images/s"),
        ("latency", "load / first inference", f"{lat['load_ms']:.2f} ms / {lat['first_inference_ms']:.3f} ms"),
    ]
    if "skipped" in mem:
        rows.append(("memory", "peak RSS", f"skipped: {mem['skipped']}"))
    else:
        rows += [
            ("memory", "peak RSS (fresh process)", _fmt(mem["peak_rss_mb"], 1, "MB")),
            ("memory", "baseline RSS before loading (python + numpy + runtime)", _fmt(mem["baseline_rss_mb"], 1, "MB")),
            ("memory", "peak over baseline", _fmt(mem["peak_over_baseline_mb"], 1, "MB")),
            ("memory", "cold runtime import / cold load", f"{mem['runtime_import_ms']:.0f} ms / {mem['cold_load_ms']:.1f} ms"),
        ]
    rows.append(("memory", "artifact on disk", f"{report['bundle']['artifact_bytes']:,} B"))
    raw = feat["bytes_per_image"]
    comp = feat["compression"]
    codec = comp["codecs"][comp["codec"]]
    rows.append(("features", f"z {'x'.join(map(str, feat['shape']))} = {feat['numel']:,} values; raw fp32 / fp16 / int8",
                 f"{raw['fp32']:,} / {raw['fp16']:,} / {raw['int8']:,} B per image"))
    rows.append(("features", f"int8 side information ({feat['int8_wire']['dtype']}, per channel)",
                 f"{feat['int8_wire']['scales_bytes_once']} B once per session"))
    rows.append(("features", f"compressed with {comp['codec']} ({codec['setting']}), mean per image",
                 " / ".join(f"{codec['per_image'][d]['mean_bytes']:,.0f}" for d in ("fp32", "fp16", "int8")) + " B"))
    for name, other in comp["codecs"].items():
        if name != comp["codec"]:
            rows.append(("features", f"compressed with {name} ({other['setting']})",
                         " / ".join(f"{other['per_image'][d]['mean_bytes']:,.0f}" for d in ("fp32", "fp16", "int8")) + " B"))
    acc = feat["wire_accuracy"]
    if "skipped" in acc:
        rows.append(("features", "int8 on the wire: accuracy cost", f"skipped: {acc['skipped']}"))
    else:
        text = f"top-1 agreement with fp32 wire {acc['top1_agreement_int8_vs_fp32_wire']:.2%}"
        if "accuracy_fp32_wire" in acc:
            text += (f"; accuracy {acc['accuracy_fp32_wire']:.2%} -> {acc['accuracy_int8_wire']:.2%} "
                     f"({acc['accuracy_cost_points']:+.2f} points cost)")
        rows.append(("features", f"int8 on the wire ({acc['images']} images, float cloud)", text))
    budgets = report["budgets"]
    for item in budgets["items"]:
        verdict = "PASS" if item["passed"] else ("FAIL" if item["passed"] is False else budgets.get("reason", "not checked"))
        rows.append(("budget", f"{item['figure']} <= {item['limit']:g} {item['unit']} ({budgets.get('profile')})",
                     f"{_fmt(item['measured'], 3, item['unit'])}: {verdict}"))
    if report["baseline"]:
        for item in report["baseline"]["items"]:
            if item["change_pct"] is None:
                rows.append(("baseline", item["figure"], item.get("note", "n/a")))
                continue
            verdict = "REGRESSED" if item["regressed"] else "ok"
            rows.append(("baseline", f"{item['figure']} vs baseline (tolerance {report['baseline']['tolerance_pct']:g}%)",
                         f"{item['measured']:.3f} vs {item['baseline']:.3f} {item['unit']} "
                         f"({item['change_pct']:+.1f}%): {verdict}"))
    return rows


def provenance_rows(report: dict) -> list[tuple[str, str]]:
    p = report["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in p["runtime_versions"].items())
    rows = [("device", p["device_model"]), ("cores (online / usable)", f"{p['cores_online']} / {p['cores_usable']}"),
            ("CPU governor", p["cpu_governor"]), ("OS / kernel", f"{p['os']} / {p['kernel']}"),
            ("Python", p["python"]), ("runtime", f"{report['runtime']['label']} ({versions})"),
            ("threads", f"{p['threads']} ({report['settings']['threads_source']})")]
    if p.get("l4t_release"):
        rows.append(("L4T (JetPack)", p["l4t_release"]))
    if p.get("load_average_1_5_15"):
        rows.append(("load average at the end", " / ".join(str(v) for v in p["load_average_1_5_15"])))
    return rows


def render_tables(report: dict) -> list:
    """rich tables for the terminal (rich is imported here, not at module import)."""
    from rich.markup import escape
    from rich.table import Table

    verdict = "[bold green]PASS[/]" if report["passed"] else "[bold red]FAIL[/]"
    table = Table(title=f"bench: {escape(title(report))} - {verdict}", title_justify="left")
    table.add_column("")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    last = None
    for section, figure, value in summary_rows(report):
        table.add_row(section if section != last else "", escape(figure), escape(value))
        last = section
    prov = Table(title="provenance", title_justify="left", show_header=False)
    prov.add_column("")
    prov.add_column("")
    for key, value in provenance_rows(report):
        prov.add_row(escape(key), escape(str(value)))
    return [table, prov]


def render_markdown(report: dict) -> str:
    """A report that fits a CI job summary (GitHub-flavoured Markdown)."""
    verdict = "PASS" if report["passed"] else "FAIL"
    lines = [f"### sift-deploy bench: {verdict}", "", f"**{title(report)}**", ""]
    if report["runtime"]["kind"] == STAND_IN_KIND:
        lines += [f"> **Stand-in:** {report['runtime']['label']}. These are not measurements of the target device.", ""]
    for failure in report["failures"]:
        lines.append(f"- :x: {failure}")
    if report["failures"]:
        lines.append("")
    lines += ["| | figure | measured |", "|---|---|---:|"]
    last = None
    for section, figure, value in summary_rows(report):
        cell = lambda t: str(t).replace("|", "\\|")  # noqa: E731
        lines.append(f"| {cell(section) if section != last else ''} | {cell(figure)} | {cell(value)} |")
        last = section
    lines += ["", "<details><summary>provenance</summary>", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in provenance_rows(report)]
    lines += ["", "</details>", ""]
    for note in report.get("notes", []):
        lines.append(f"_note: {note}_  ")
    lines.append(f"_sift-deploy {report['tool']['version']}, report schema {report['schema_version']}, {report['created']}_")
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    from ..fileio import atomic_file

    with atomic_file(Path(path), force=True) as tmp:
        tmp.write_text(text)
