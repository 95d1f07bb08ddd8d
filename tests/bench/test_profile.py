"""`sift-deploy bench --profile`: per-op profiles from ORT's profiler and LiteRT per-node timing, in
the report and on the terminal. Functional only: ops are named, shares add up to 1; no wall times."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sift_deploy.backends import open_runner
from sift_deploy.backends.profiling import CATEGORIES, category, op_profile
from sift_deploy.bundle import read_manifest
from sift_deploy.documents import parse_document
from sift_deploy.documents.bench_report import BenchReport
from sift_deploy.errors import SiftError

from .conftest import FEW, invoke, needs_litert


def _check_profile(profile: dict, batch: int = 1) -> None:
    assert profile["ops"] and profile["batch"] == batch and profile["runs"] >= 1
    assert sum(op["share"] for op in profile["ops"]) == pytest.approx(1.0, abs=1e-3)
    assert sum(profile["shares"][c] for c in CATEGORIES) == pytest.approx(1.0, abs=1e-3)
    assert sum(t["share"] for t in profile["op_types"]) == pytest.approx(1.0, abs=1e-3)
    us = [op["us"] for op in profile["ops"]]
    assert us == sorted(us, reverse=True) and all(u >= 0 for u in us)
    assert all(op["category"] == category(op["op_type"]) for op in profile["ops"])


def test_op_profile_shapes_rows():
    p = op_profile([{"node": "a", "op_type": "Conv", "us": 3.0}, {"node": "q", "op_type": "QuantizeLinear", "us": 1.0},
                    {"node": "t", "op_type": "Transpose", "us": -0.5}], method="m", runs=2, batch=1)
    assert [op["node"] for op in p["ops"]] == ["a", "q", "t"]
    assert p["shares"] == {"quantize_dequantize": 0.25, "layout": 0.0, "compute": 0.75}
    _check_profile(p)


def test_bench_profile_x86_int8(x86_bundle, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("bench", x86_bundle, *FEW, "--profile", "--profile-runs", "5", "--json-file", out)
    assert result.exit_code == 0, result.output
    assert "per-op profile" in result.output and "share: quantize / dequantize" in result.output
    doc = json.loads(out.read_text())
    parse_document(BenchReport, doc, "the report")
    prof = doc["profile"]
    _check_profile(prof)
    assert "onnxruntime profiler" in prof["method"]
    assert prof["shares"]["quantize_dequantize"] > 0  # the int8 bundle has Q/DQ nodes
    assert {"QuantizeLinear", "DequantizeLinear"} & {op["op_type"] for op in prof["ops"]}


def test_bench_without_profile_has_none(x86_run):
    _, doc, _, _ = x86_run
    assert doc.get("profile") is None


@needs_litert
def test_litert_per_node_profile(rpi_bundle):
    manifest = read_manifest(rpi_bundle)
    runner = open_runner(rpi_bundle, manifest, threads=1)
    model = manifest["model"]
    x = np.zeros((2, model["in_channels"], model["input_size"], model["input_size"]), np.float32)
    prof = runner.profile(x, runs=4, warmup=1, rounds=2)
    _check_profile(prof, batch=2)
    assert "prefix graphs" in prof["method"]
    ops = runner.details.get("ops", {})
    assert sum(ops.values()) == sum(1 for op in prof["ops"] if not op["node"].startswith("runner:"))


def test_torch_runner_has_no_profiler():
    import torch

    from sift_deploy.backends.torch.runner import ModuleLoader, TorchRunner

    runner = TorchRunner(ModuleLoader(torch.nn.Identity()))
    with pytest.raises(SiftError, match="no per-op profiler"):
        runner.profile(np.zeros((1, 1, 4, 4), np.float32))
