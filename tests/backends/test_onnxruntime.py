"""sift_deploy/backends/onnxruntime: each precision exports and runs in the real onnxruntime.

The edge is the shipped reference checkpoint's (a seeded random-init siftfunnel-cnn while that file
does not exist yet); calibration and parity images are the committed real Fashion-MNIST images
(first 512 calibrate, the other 256 are held out). Each artifact is exported once per module.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from sift_deploy.backends.base import Artifacts, ExportRequest, FileLoader
from sift_deploy.backends.onnxruntime.export import export
from sift_deploy.backends.onnxruntime.rewrite import export_form
from sift_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner, create_runner
from sift_deploy.errors import SiftError
from sift_deploy.parity import cosine_per_image

ROOT = Path(__file__).resolve().parents[2]


def _export(edge_case, out_dir: Path, precision: str, method: str = "minmax", **options):
    edge, calib, held_out, _, _ = edge_case
    request = ExportRequest(edge=edge, input_shape=tuple(held_out.shape[1:]), precision=precision, calibration=calib,
                            calib_method=method, out_dir=out_dir, options={"opset": 17, "measure": False, **options})
    result = export(request)
    assert (out_dir / result.files["edge"]).is_file()
    return out_dir, result


@pytest.fixture(scope="module")
def exports(edge_case, tmp_path_factory):
    root = tmp_path_factory.mktemp("ort")
    return {
        "fp32": _export(edge_case, root / "fp32", "fp32"),
        "fp16": _export(edge_case, root / "fp16", "fp16"),
        "int8-minmax": _export(edge_case, root / "int8-minmax", "int8", "minmax", measure=True),
        "int8-entropy": _export(edge_case, root / "int8-entropy", "int8", "entropy"),
        "int8-percentile": _export(edge_case, root / "int8-percentile", "int8", "percentile"),
    }


def _run(out_dir: Path, result, x: np.ndarray) -> np.ndarray:
    with OnnxRuntimeRunner(FileLoader(out_dir / result.files["edge"]), threads=1) as runner:
        return runner.infer(x)


def test_runner_imports_no_torch():
    code = textwrap.dedent("""
        import sys
        import sift_deploy.backends.onnxruntime.runner
        import sift_deploy.backends.onnxruntime
        assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_fp32_is_one_file_with_folded_bn_and_dynamic_batch(exports, edge_case):
    out_dir, result = exports["fp32"]
    assert sorted(p.name for p in out_dir.iterdir()) == [result.files["edge"]]  # no external-data file
    model = onnx.load(str(out_dir / result.files["edge"]))
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in model.graph.initializer)
    assert not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert result.details["opset"] == 17 and result.details["exporter"].startswith("torch.onnx.export (TorchScript")
    _, _, held_out, z_ref, _ = edge_case
    for batch in (1, 5):
        z = _run(out_dir, result, held_out[:batch])
        assert z.shape == z_ref[:batch].shape and z.dtype == np.float32


def test_fp32_parity(exports, edge_case):
    _, _, held_out, z_ref, source = edge_case
    z = _run(*exports["fp32"], held_out)
    assert np.abs(z - z_ref).max() < 1e-4, source


def test_fp16_parity_with_fp32_io(exports, edge_case):
    out_dir, result = exports["fp16"]
    model = onnx.load(str(out_dir / result.files["edge"]))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    _, _, held_out, z_ref, source = edge_case
    cos = cosine_per_image(z_ref, _run(out_dir, result, held_out))
    assert cos.min() >= 0.99, (source, cos.min())


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_int8_parity(exports, edge_case, method):
    _, _, held_out, z_ref, source = edge_case
    out_dir, result = exports[f"int8-{method}"]
    cos = cosine_per_image(z_ref, _run(out_dir, result, held_out))
    assert cos.mean() >= 0.99, (source, method, cos.mean())
    assert result.details["quantization"]["calibration"]["method"] == method


def test_entropy_calibration_is_real(exports):
    """ORT's default Entropy settings reproduce MinMax; ours must clip: different, mostly tighter ranges."""
    entropy = exports["int8-entropy"][1].details["quantization"]["calibration"]
    minmax = exports["int8-minmax"][1].details["quantization"]["calibration"]
    assert entropy["num_bins"] == 2048 and entropy["num_quantized_bins"] == 128
    shared = sorted(set(entropy["ranges"]) & set(minmax["ranges"]))
    assert shared
    width = {name: (r[1] - r[0]) for name, r in entropy["ranges"].items()}
    ref = {name: (r[1] - r[0]) for name, r in minmax["ranges"].items()}
    differ = [n for n in shared if not np.isclose(width[n], ref[n], rtol=1e-4)]
    assert differ, "entropy ranges equal MinMax ranges: the KL search did not run"
    assert all(width[n] <= ref[n] * (1 + 1e-5) for n in shared)  # clipping only ever narrows a range


def test_int8_optimised_graph_agrees_with_reference_kernels(exports, edge_case):
    """ORT's QDQ fusions have had bugs (microsoft/onnxruntime#24711): compare against no optimisation."""
    out_dir, result = exports["int8-minmax"]
    _, _, held_out, _, _ = edge_case
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    plain = ort.InferenceSession(str(out_dir / result.files["edge"]), so, providers=["CPUExecutionProvider"])
    reference = plain.run(None, {"input": held_out[:64]})[0]
    assert cosine_per_image(reference, _run(out_dir, result, held_out[:64])).min() >= 0.9999


def test_int8_runs_integer_kernels(exports, tmp_path):
    out_dir, result = exports["int8-minmax"]
    model = onnx.load(str(out_dir / result.files["edge"]))
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    inits = {t.name: t for t in model.graph.initializer}
    zp_types = {inits[n.input[2]].data_type for n in qdq if len(n.input) > 2 and n.input[2] in inits}
    # uint8 activations, int8 weights, int32 biases
    assert {onnx.TensorProto.INT8, onnx.TensorProto.UINT8} <= zp_types <= {onnx.TensorProto.INT8, onnx.TensorProto.UINT8,
                                                                           onnx.TensorProto.INT32}
    # what ORT actually executes: fused integer convolutions
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(str(out_dir / result.files["edge"]), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "QLinearConv" in ops, sorted(ops)


def test_int8_choice_is_recorded_and_measured(exports):
    q = exports["int8-minmax"][1].details["quantization"]
    quantized = {c["node"] for c in q["quantized_convs"]}
    float_convs = {c["node"]: c for c in q["float_convs"]}
    assert quantized and float_convs
    assert all(c["macs"] >= q["rule"]["min_macs_per_image"] and c["in_channels"] >= q["rule"]["min_in_channels"]
               for c in q["quantized_convs"])
    stem = [c for c in float_convs.values() if c["in_channels"] == 1]
    assert stem, "the 1-input-channel stem conv must stay float (ORT's int8 kernel is slower on it)"
    timing = q["timing_us"]
    assert timing["fp32_p50"] > 0 and timing["int8_p50"] > 0 and timing["threads"] == 1 and timing["batch"] == 1
    assert timing["int8_over_fp32"] == pytest.approx(timing["int8_p50"] / timing["fp32_p50"], abs=1e-3)
    # How fast int8 is belongs to benchmarks/ (ort_int8_choice.py, bench_runtimes.py), not to a test.


def test_the_fixed_rules_are_read_back_for_the_precision_search(exports, edge_case, tmp_path):
    from sift_deploy.backends import get_backend

    out_dir, result = exports["int8-minmax"]
    edge, calib, held_out, _, _ = edge_case
    request = ExportRequest(edge=edge, input_shape=tuple(held_out.shape[1:]), precision="int8", calibration=calib,
                            calib_method="minmax", out_dir=tmp_path, options={"opset": 17})
    backend = get_backend("onnxruntime")
    rules = backend.rule_int8_layers(request, result.details)
    assert rules == [c["node"] for c in result.details["quantization"]["quantized_convs"]]
    assert rules and set(rules) < set(backend.quantizable_layers(request))


def test_export_form_matches_module(edge_case):
    from sift_deploy.models import ModelSpec, build_model

    torch.manual_seed(1)
    model = build_model(ModelSpec("siftfunnel-cnn")).eval()
    for module in model.modules():  # non-trivial BN statistics, so that the folding is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    _, _, held_out, _, _ = edge_case
    x = torch.from_numpy(held_out[:32])
    fast, replaced = export_form(model.edge, (1, 32, 32))
    assert len(replaced) == 4
    with torch.no_grad():
        ref, got = model.edge(x), fast(x)
    assert (ref - got).abs().max() <= 1e-6 * ref.abs().max()


def test_faithful_export_also_matches(edge_case, tmp_path):
    _, _, held_out, z_ref, _ = edge_case
    out_dir, result = _export(edge_case, tmp_path, "fp32", rewrite=False)
    assert "rewrite" not in result.details
    model = onnx.load(str(out_dir / result.files["edge"]))
    assert any(n.op_type == "Transpose" for n in model.graph.node)  # TripletAttention's permutes are still there
    assert np.abs(_run(out_dir, result, held_out[:64]) - z_ref[:64]).max() < 1e-4


def test_runner_errors_are_user_errors(exports, tmp_path):
    out_dir, result = exports["fp32"]
    with pytest.raises(SiftError, match="does not exist"):
        OnnxRuntimeRunner(FileLoader(tmp_path / "missing.onnx")).activate()
    with create_runner(Artifacts(folder=out_dir), result.files["edge"], result.details, 1) as runner:
        with pytest.raises(SiftError, match="does not fit"):
            runner.infer(np.zeros((1, 1, 28, 28), np.float32))
        assert runner.versions()["onnxruntime"] == ort.__version__


def test_bad_requests_are_user_errors(edge_case, tmp_path):
    edge, calib, held_out, _, _ = edge_case
    base = dict(edge=edge, input_shape=(1, 32, 32), calibration=calib, calib_method="minmax", out_dir=tmp_path)
    with pytest.raises(SiftError, match="precision"):
        export(ExportRequest(precision="int4", **base))
    with pytest.raises(SiftError, match="calibration method"):
        export(ExportRequest(precision="int8", **{**base, "calib_method": "kl"}))
    with pytest.raises(SiftError, match="calibration images"):
        export(ExportRequest(precision="int8", **{**base, "calibration": calib[:, :, :28, :28]}))
