"""Peak memory of loading an artifact and running it, measured in a fresh interpreter.

`probe_memory()` writes a spec and starts `python -m sift_deploy.bench.memory_probe SPEC_JSON`.
That process imports numpy, the backend registry, the runtime and the runner module (no torch, so
the CLI's own imports do not count), reads its RSS (baseline), resets the high-water mark, loads
the artifact, runs inferences and reads VmHWM from /proc/self/status (ru_maxrss where /proc is
missing). It prints one JSON line; `probe_memory()` turns it into the report's MB figures.

This module must stay importable with numpy and the standard library only.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import SiftError
from .timing import time_imports

CHILD_ERROR_EXIT = 3


# --------------------------------------------------------------------------- the probe process


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_kib() -> int:
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value // 1024 if sys.platform == "darwin" else value


def _reset_high_water_mark() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0), so the peak is load + inference only."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def measure(spec: dict) -> dict:
    """Runs inside the probe process: the raw figures in KiB, or {"error": ...}."""
    from ..backends.base import Artifacts

    # Backends by package, not by registry name: a backend registered at run time has no registry line here.
    backend = importlib.import_module(spec["backend_package"]).BACKEND
    timed = importlib.import_module(spec["runtime_package"] or spec["backend_package"]).BACKEND
    out: dict = {"runtime_import_ms": time_imports(timed.runtime_modules)}
    out["baseline_kib"] = _status_kib("VmRSS") or _maxrss_kib()
    out["import_hwm_kib"] = _status_kib("VmHWM") or _maxrss_kib()
    out["hwm_reset"] = _reset_high_water_mark()
    x = np.load(spec["inputs"])
    try:
        runner = backend.create_runner(Artifacts(folder=spec["bundle_dir"]), spec["edge_file"], spec["details"],
                                       spec["threads"], spec["runtime"])
        started = time.perf_counter_ns()
        runner.activate()
        out["load_ms"] = (time.perf_counter_ns() - started) / 1e6
        out["after_load_kib"] = _status_kib("VmRSS")
        for _ in range(spec["runs"]):
            runner.infer(x)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        return {"error": f"{type(exc).__name__}: {first_line}"}
    out["after_inference_kib"] = _status_kib("VmRSS")
    out["peak_kib"] = _status_kib("VmHWM") or _maxrss_kib()
    out["peak_source"] = "VmHWM" if _status_kib("VmHWM") is not None else "ru_maxrss"
    out["runs"] = spec["runs"]
    out["torch_imported"] = sys.modules.get("torch") is not None
    out["modules_loaded"] = len(sys.modules)
    return out


def main(argv: list[str]) -> int:
    result = measure(json.loads(argv[0]))
    print(json.dumps(result))
    return CHILD_ERROR_EXIT if "error" in result else 0


# --------------------------------------------------------------------------- the caller's side


def _to_mib(kib: int | None) -> float | None:
    return None if kib is None else round(kib / 1024.0, 2)


def probe_memory(backend: str, runtime: str | None, bundle_dir: Path, edge_file: str, details: dict, threads: int,
                 inputs: np.ndarray, runs: int, timeout_s: float = 600.0) -> dict:
    """Peak RSS of loading `edge_file` and running `runs` inferences on `inputs`, in a fresh process.

    `backend` names the bundle's backend; `runtime` a stand-in runtime, or None for its own.
    Returns MB figures: baseline (python + numpy + runtime + runner module), after load, peak.
    """
    # Imported here: the probe process imports this module too, and they would count in its baseline.
    import subprocess
    import tempfile

    from ..backends import get_backend

    with tempfile.TemporaryDirectory(prefix="sift-bench-") as tmp:
        inputs_path = Path(tmp) / "inputs.npy"
        np.save(inputs_path, np.ascontiguousarray(inputs, dtype=np.float32))
        spec = {"backend_package": get_backend(backend).package,
                "runtime_package": get_backend(runtime).package if runtime else None, "runtime": runtime,
                "bundle_dir": str(Path(bundle_dir).resolve()), "edge_file": edge_file, "details": details, "threads": int(threads), "inputs": str(inputs_path),
                "runs": int(runs)}
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.run([sys.executable, "-m", __name__, json.dumps(spec)], capture_output=True,
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
    peak, baseline = _to_mib(raw["peak_kib"]), _to_mib(raw["baseline_kib"])
    reset = " after resetting it past the imports (clear_refs 5)" if raw["hwm_reset"] else " (process lifetime)"
    return {
        "method": f"fresh subprocess (numpy + runtime + the {backend} runner); peak = {raw['peak_source']}{reset}",
        "baseline_rss_mb": baseline,
        "after_load_rss_mb": _to_mib(raw.get("after_load_kib")),
        "after_inference_rss_mb": _to_mib(raw.get("after_inference_kib")),
        "peak_rss_mb": peak,
        "peak_over_baseline_mb": round(peak - baseline, 2) if peak is not None and baseline is not None else None,
        "hwm_reset": bool(raw["hwm_reset"]),
        "runtime_import_ms": round(raw["runtime_import_ms"], 3),
        "cold_load_ms": round(raw["load_ms"], 3),
        "inferences": int(raw["runs"]),
        "torch_imported": bool(raw["torch_imported"]),
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
