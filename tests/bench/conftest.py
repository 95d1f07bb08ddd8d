"""Fixtures of the bench tests: bundles exported once per session from the shipped reference
checkpoint (parity on the committed hold-out images, so no dataset is read), one bench run of the
x86 bundle, and the CLI helpers. No bench test asserts a wall time: timings here are noisy."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sift_deploy.export import export_bundle

from ..conftest import assert_one_line_error, invoke  # noqa: F401 - the bench tests import them from here

FEW = ("--iterations", "20", "--warmup", "2")
LITERT_MISSING = "ai-edge-litert / litert-torch are not installed (pip install 'sift-deploy[rpi,rpi-export]')"
HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None and importlib.util.find_spec("litert_torch") is not None
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason=LITERT_MISSING)


def export(root: Path, target: str, precision: str | None = None) -> Path:
    out = root / f"{Path(target).stem}-{precision or 'default'}"
    export_bundle(None, target, precision, output=out, parity_on_test_split=False)
    return out


# `sift-deploy ARGS` in a fresh interpreter where `import torch` (and any module in `blocked`) raises
# ImportError; it prints the torch modules it ended up with.
NO_TORCH = """
import json, sys
sys.modules["torch"] = None  # from here on, `import torch` raises ImportError
for name in {blocked!r}:
    sys.modules[name] = None
from sift_deploy.cli import run
sys.argv = ["sift-deploy", *{args!r}]
code = 0
try:
    run()
except SystemExit as exc:
    code = exc.code or 0
torch = sorted(m for m, v in sys.modules.items() if v is not None and (m == "torch" or m.startswith("torch.")))
print("TORCH_MODULES=" + json.dumps(torch), file=sys.stderr)
sys.exit(code)
"""


def run_blocked(args, blocked=()) -> subprocess.CompletedProcess:
    script = NO_TORCH.format(blocked=list(blocked), args=[str(a) for a in args])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-bundles")


@pytest.fixture(scope="session")
def x86_bundle(reference_bundle) -> Path:
    return reference_bundle("x86")  # the profile's default precision: int8 (ORT Q/DQ)


@pytest.fixture(scope="session")
def rpi_bundle(reference_bundle) -> Path:
    if not HAS_LITERT:
        pytest.skip(LITERT_MISSING)
    return reference_bundle("rpi")  # the profile default, int8: the same bundle test_export verifies


@pytest.fixture(scope="session")
def jetson_bundle(reference_bundle) -> Path:
    return reference_bundle("jetson")  # int8 Q/DQ ONNX (+ build_engine.sh); no engine without TensorRT


@pytest.fixture(scope="session")
def x86_run(x86_bundle, tmp_path_factory):
    """One bench run of the x86 bundle: (CliRunner result, JSON report, Markdown text, JSON path)."""
    out = tmp_path_factory.mktemp("x86-run")
    result = invoke("bench", x86_bundle, *FEW, "--json-file", out / "bench.json", "--markdown", out / "bench.md")
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text(), out / "bench.json"
