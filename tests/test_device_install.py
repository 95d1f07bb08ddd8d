"""The README's device install works: a wheel built from a clone, installed with only the `rpi` extra in
a fresh virtual environment, pulls no torch; `verify` and `bench` run an rpi bundle there, and
`inspect` says in one line which extra it lacks."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HAS_LITERT = all(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "litert_torch"))


def run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=1200, **kwargs)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_LITERT, reason="exporting the rpi bundle needs litert-torch (pip install './sift-deploy[rpi-export]')")
def test_rpi_extra_in_a_fresh_venv_runs_verify_and_bench(reference_bundle, tmp_path):
    clone = tmp_path / "sift-deploy"  # what a clone holds that the build reads
    clone.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, clone / name)
    shutil.copytree(ROOT / "sift_deploy", clone / "sift_deploy", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "dist"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, clone)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next(wheels.glob("sift_deploy-*.whl"))

    env_dir = tmp_path / "device-venv"
    venv.create(env_dir, with_pip=True)
    python, cli = env_dir / "bin" / "python", env_dir / "bin" / "sift-deploy"
    installed = run(python, "-m", "pip", "install", f"{wheel}[rpi]")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    packages = {p["name"].lower() for p in json.loads(run(python, "-m", "pip", "list", "--format", "json").stdout)}
    assert "ai-edge-litert" in packages and "sift-deploy" in packages
    assert not packages & {"torch", "onnx", "onnxruntime", "safetensors"}, packages

    bundle = reference_bundle("rpi", "fp32")
    verify = run(cli, "verify", bundle)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.strip().splitlines()[-1].startswith("PASS")
    bench = run(cli, "bench", bundle, "--iterations", "20", "--warmup", "2", "--json")
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert report["runtime"]["name"] == "litert" and report["torch_imported"] is False
    assert "skipped" in report["features"]["wire_accuracy"]  # no onnxruntime on the Pi: said, not crashed
    inspect = run(cli, "inspect")
    assert inspect.returncode == 2 and inspect.stderr.strip().splitlines() == [
        "error: inspect needs the 'export' extra (torch is not installed): "
        "pip install './sift-deploy[export]' (sift-deploy: a clone of the repository; see the README)"]
