"""A light install (a device: numpy, typer, rich, pydantic and a runtime) says, in one line with exit 2,
which extra a command needs; verify and bench run without it. Each case is a fresh interpreter in which
`import torch` and `import safetensors` fail, as they do where those packages are not installed."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Blocks the modules, then runs the CLI the way the console script does.
WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # from here on, `import name` raises ModuleNotFoundError
from sift_deploy.cli import run
sys.argv = ["sift-deploy", *{args!r}]
run()
"""


def run_without(args: list[str], blocked=("torch", "safetensors")) -> subprocess.CompletedProcess:
    script = WITHOUT.format(blocked=list(blocked), args=[str(a) for a in args])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def assert_names_the_extra(proc: subprocess.CompletedProcess, command: str, extra: str, module: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith(f"error: {command} needs the '{extra}' extra")
    assert f"({module} is not installed)" in lines[0] and f"pip install './sift-deploy[{extra}]'" in lines[0]


@pytest.mark.parametrize("args, extra", [
    (["inspect"], "export"),
    (["export", "--target", "x86"], "export"),
    (["train", "--max-steps", "1"], "export"),
    (["check", "some-bundle"], "check"),
    (["convert", "official.pth", "--arch", "siftfunnel-cnn"], "export"),
    (["advise"], "export,check"),
])
def test_commands_that_need_torch_name_their_extra(args, extra, tmp_path):
    proc = run_without(args + (["-o", str(tmp_path / "out")] if args[0] == "export" else []))
    assert_names_the_extra(proc, args[0], extra, "torch")


def test_without_safetensors_only(tiny_checkpoint):
    """A `.[dev,rpi]` install with torch from elsewhere: inspect names safetensors, not a traceback."""
    proc = run_without(["inspect", str(tiny_checkpoint.path)], blocked=["safetensors"])
    assert_names_the_extra(proc, "inspect", "export", "safetensors")


def test_verify_and_bench_run_without_torch(reference_bundle):
    bundle = reference_bundle("x86", "fp32")
    verify = run_without(["verify", str(bundle)])
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.strip().splitlines()[-1].startswith("PASS")
    bench = run_without(["bench", str(bundle), "--iterations", "5", "--warmup", "1", "--json"])
    assert bench.returncode == 0, bench.stderr
    assert '"torch_imported": false' in bench.stdout


def test_targets_runs_without_torch():
    proc = run_without(["targets"])
    assert proc.returncode == 0, proc.stderr
    assert "rpi4" in proc.stdout and "litert" in proc.stdout
