"""The memory probe: a module run as `python -m sift_deploy.bench.memory_probe` in a fresh
interpreter that must not need torch; its peak follows the artifact's size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sift_deploy.bench.memory_probe import probe_memory
from sift_deploy.errors import SiftError

ROOT = Path(__file__).resolve().parents[2]


def matmul_onnx(path: Path, out_features: int) -> Path:
    """input (1,1,32,32) -> reshape (1,1024) -> MatMul with a random (1024, out_features) fp32 initializer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((1024, out_features), dtype=np.float32), "W")
    shape = numpy_helper.from_array(np.array([1, 1024], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["z"])],
        "matmul", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, out_features])], [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_memory_probe_ranks_a_large_weight_above_a_small_one(tmp_path):
    big = matmul_onnx(tmp_path / "big.onnx", 12288)  # 1024 x 12288 x 4 B = 50.3 MB
    small = matmul_onnx(tmp_path / "small.onnx", 12)  # 48 KB
    assert big.stat().st_size > 50e6 > 1e6 > small.stat().st_size
    x = np.random.default_rng(1).standard_normal((1, 1, 32, 32), dtype=np.float32)
    m_big = probe_memory("onnxruntime", None, tmp_path, big.name, {}, 1, x, runs=3)
    m_small = probe_memory("onnxruntime", None, tmp_path, small.name, {}, 1, x, runs=3)
    assert m_big["peak_rss_mb"] - m_small["peak_rss_mb"] > 40, (m_big, m_small)
    assert m_big["peak_over_baseline_mb"] > 40 > m_small["peak_over_baseline_mb"]
    # the baseline (python + numpy + onnxruntime + runner module) does not depend on the model
    assert abs(m_big["baseline_rss_mb"] - m_small["baseline_rss_mb"]) < 10
    assert not m_big["torch_imported"] and not m_small["torch_imported"]
    assert m_big["inferences"] == 3 and "onnxruntime runner" in m_big["method"]


def test_memory_probe_reports_a_broken_artifact(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    x = np.zeros((1, 1, 32, 32), np.float32)
    with pytest.raises(SiftError, match="memory probe could not run the artifact"):
        probe_memory("onnxruntime", None, tmp_path, "broken.onnx", {}, 1, x, runs=1)


def test_the_probe_module_runs_with_torch_blocked(tmp_path):
    """`python -m sift_deploy.bench.memory_probe SPEC` where `import torch` fails: it still measures."""
    onnx_file = matmul_onnx(tmp_path / "edge.onnx", 64)
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    spec = {"backend_package": "sift_deploy.backends.onnxruntime", "runtime_package": None, "runtime": None,
            "bundle_dir": str(tmp_path), "edge_file": onnx_file.name,
            "details": {}, "threads": 1, "inputs": str(tmp_path / "x.npy"), "runs": 2}
    script = textwrap.dedent(f"""
        import runpy, sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        sys.argv = ["memory_probe", {json.dumps(spec)!r}]
        try:
            runpy.run_module("sift_deploy.bench.memory_probe", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code
        loaded = sorted(m for m, v in sys.modules.items() if v is not None and m.startswith(("torch.", "rich", "pydantic")))
        print("LOADED=" + ",".join(loaded), file=sys.stderr)
        sys.exit(code)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    assert out["peak_kib"] > 0 and out["peak_kib"] >= out["after_load_kib"] > 0 and out["runs"] == 2
    assert out["torch_imported"] is False and "error" not in out
    loaded = [line for line in proc.stderr.splitlines() if line.startswith("LOADED=")]
    assert loaded == ["LOADED="], loaded  # no torch, and none of bench's report or rendering imports
