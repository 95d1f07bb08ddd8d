"""sift_deploy/backends/tensorrt: TensorRT-ready ONNX, its lint, the calibration cache, the engine.

TensorRT itself is not installable on the project's CPU machines (no GPU; the PyPI packages are stubs),
so the engine test is marked `tensorrt` and skips there. Everything else runs everywhere: the exported
Q/DQ model is checked by our lint and run by ONNX Runtime (the labelled stand-in) against the float
edge on the committed held-out real images.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from sift_deploy.backends import open_runner
from sift_deploy.backends.base import Artifacts, ExportRequest
from sift_deploy.backends.tensorrt import BACKEND
from sift_deploy.backends.tensorrt import calib_cache
from sift_deploy.backends.tensorrt.export import export
from sift_deploy.backends.tensorrt.lint import lint
from sift_deploy.backends.tensorrt.runner import OnnxRuntimeStandInRunner, tensorrt_available
from sift_deploy.errors import SiftError
from sift_deploy.parity import cosine_per_image

ROOT = Path(__file__).resolve().parents[2]
TRT_OK, TRT_WHY = tensorrt_available()
TRT_MISSING = "tensorrt Python module / NVIDIA GPU not available"


def _request(edge_case, out_dir, precision="int8", method="minmax", **options):
    edge, calib, _, _, _ = edge_case
    return ExportRequest(edge=edge, input_shape=(1, 32, 32), precision=precision, calibration=calib, calib_method=method,
                         out_dir=out_dir, options={"opset": 17, "trt_version": "8.5.2", "build_engine": False, **options})


@pytest.fixture(scope="module")
def int8_bundle(edge_case, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("trt") / "int8"
    return out_dir, export(_request(edge_case, out_dir))


@pytest.fixture(scope="module")
def qdq_model(int8_bundle):
    out_dir, result = int8_bundle
    return onnx.load(str(out_dir / result.files["onnx"]))


def _rules(model, version="8.5.2"):
    return {v.rule for v in lint(model, version)}


# ---------------------------------------------------------------------------------------------- export

def test_int8_onnx_passes_the_lint(int8_bundle, qdq_model):
    out_dir, result = int8_bundle
    assert lint(qdq_model, "8.5.2") == []
    assert lint(qdq_model, "10.3.0") == []
    opset = next(o.version for o in qdq_model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == 17
    ops = {n.op_type for n in qdq_model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert result.details["quantization"]["lint"].startswith("passed")


def test_the_fixed_rules_are_every_conv_the_parity_guard_kept_int8(int8_bundle, edge_case, tmp_path):
    from sift_deploy.backends import get_backend

    _, result = int8_bundle
    backend = get_backend("tensorrt")
    request = _request(edge_case, tmp_path)
    kept = {row["node"] for row in result.details["quantization"]["parity_guard"]["kept_float"]}
    convs = backend.quantizable_layers(request)
    assert backend.rule_int8_layers(request, result.details) == [c for c in convs if c not in kept]


def test_int8_bundle_files_and_trtexec(int8_bundle):
    out_dir, result = int8_bundle
    for role in ("onnx", "onnx_fp32", "calibration_cache", "build_script"):
        assert (out_dir / result.files[role]).is_file(), role
    cmd = result.details["trtexec"]
    assert cmd.startswith("trtexec --onnx=edge.int8.qdq.onnx --int8") and "--saveEngine=edge.plan" in cmd
    assert "--minShapes=input:1x1x32x32" in cmd and "--maxShapes=input:32x1x32x32" in cmd
    script = (out_dir / result.files["build_script"]).read_text()
    assert script.startswith("#!/usr/bin/env bash") and cmd.split(" ", 1)[1] in script
    assert "--calib=edge.calib.cache" in result.details["trtexec_implicit"]
    if not TRT_OK:
        assert result.files["edge"] == result.files["onnx"] and result.details["engine"]["built_at_export"] is False


def test_stand_in_runs_the_qdq_onnx_with_parity(int8_bundle, edge_case):
    out_dir, result = int8_bundle
    _, _, held_out, z_ref, _ = edge_case
    runner = BACKEND.create_runner(Artifacts(folder=out_dir), result.files["edge"], result.details, 1, "onnxruntime")
    assert isinstance(runner, OnnxRuntimeStandInRunner) and runner.kind == "stand-in" and "stand-in" in runner.label
    with runner:
        cos = cosine_per_image(z_ref, runner.infer(held_out))
    assert cos.mean() >= 0.99, cos.mean()


@pytest.mark.skipif(TRT_OK, reason="TensorRT is available here; the missing-TensorRT message cannot show")
def test_native_runner_says_what_is_missing(int8_bundle):
    out_dir, result = int8_bundle
    with pytest.raises(SiftError, match=r"TensorRT is not available.*--runtime onnxruntime"):
        BACKEND.create_runner(Artifacts(folder=out_dir), result.files["edge"], result.details).activate()
    manifest = {"backend": "tensorrt", "edge_file": result.files["edge"], "export": {"details": result.details}}
    fallback = open_runner(out_dir, manifest, fallback=True)
    assert isinstance(fallback, OnnxRuntimeStandInRunner) and fallback.kind == "stand-in"


def test_fp16_exports_fp32_onnx_with_fp16_build(edge_case, tmp_path):
    result = export(_request(edge_case, tmp_path, precision="fp16", trt_version="10.3.0"))
    assert "--fp16" in result.details["trtexec"] and "--int8" not in result.details["trtexec"]
    assert "calibration_cache" not in result.files
    model = onnx.load(str(tmp_path / result.files["onnx"]))
    assert not any(n.op_type == "QuantizeLinear" for n in model.graph.node)
    assert lint(model, "10.3.0") == []


def test_opset_above_the_target_is_refused(edge_case, tmp_path):
    with pytest.raises(SiftError, match="opset 18 is above 17"):
        export(_request(edge_case, tmp_path, opset=18))


def test_runner_imports_no_torch():
    code = textwrap.dedent("""
        import sys
        import sift_deploy.backends.tensorrt.runner, sift_deploy.backends.tensorrt.lint
        import sift_deploy.backends.tensorrt.calib_cache
        assert "torch" not in sys.modules and "tensorrt" not in sys.modules
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------------------------- lint

def _first(model, op_type, activation: bool):
    """The first Q or DQ node on an activation (or on a weight)."""
    inits = {t.name for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type != op_type:
            continue
        src = node.input[0]
        is_weight = src in inits or (src in producers and producers[src].op_type == "QuantizeLinear"
                                     and producers[src].input[0] in inits)
        if is_weight != activation:
            return node
    raise AssertionError(f"no {op_type} on {'an activation' if activation else 'a weight'}")


def _replace_init(model, name, array):
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name))
            return
    raise KeyError(name)


def test_lint_catches_nonzero_zero_point(qdq_model):
    model = copy.deepcopy(qdq_model)
    node = _first(model, "QuantizeLinear", activation=True)
    _replace_init(model, node.input[2], np.array(3, np.int8))
    assert "zero-point" in _rules(model)


def test_lint_catches_uint8(qdq_model):
    model = copy.deepcopy(qdq_model)
    node = _first(model, "QuantizeLinear", activation=True)
    _replace_init(model, node.input[2], np.array(0, np.uint8))
    assert "signed-int8" in _rules(model)
    del node.input[2]  # a missing zero-point means uint8 too
    assert "signed-int8" in _rules(model)


def test_lint_catches_per_channel_activation(qdq_model):
    model = copy.deepcopy(qdq_model)
    node = _first(model, "QuantizeLinear", activation=True)
    scale = numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == node.input[1]))
    name = node.input[1] + "_per_channel"
    model.graph.initializer.extend([numpy_helper.from_array(np.full(4, float(scale), np.float32), name),
                                    numpy_helper.from_array(np.zeros(4, np.int8), name + "_zp")])
    node.input[1], node.input[2] = name, name + "_zp"
    node.attribute.append(helper.make_attribute("axis", 1))
    violations = [v for v in lint(model, "8.5.2") if v.rule == "per-tensor-activation"]
    assert violations and violations[0].node == node.name and violations[0].tensor == node.input[0]


def test_lint_catches_microsoft_ops(qdq_model):
    model = copy.deepcopy(qdq_model)
    relu = next(n for n in model.graph.node if n.op_type in ("Relu", "Sigmoid", "Mul"))
    relu.domain = "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    violations = [v for v in lint(model, "8.5.2") if v.rule == "domain"]
    assert violations and violations[0].node == relu.name


def test_lint_catches_opset_too_high(qdq_model):
    model = copy.deepcopy(qdq_model)
    next(o for o in model.opset_import if o.domain in ("", "ai.onnx")).version = 19
    assert "opset" in _rules(model, "8.5.2")  # JetPack 5.1 / 6.0: at most 17
    assert "opset" not in _rules(model, "10.3.0")  # JetPack 6.1+: up to 20
    next(o for o in model.opset_import if o.domain in ("", "ai.onnx")).version = 21
    assert "opset" in _rules(model, "10.3.0")


def test_lint_catches_wrong_weight_axis(qdq_model):
    model = copy.deepcopy(qdq_model)
    node = _first(model, "DequantizeLinear", activation=False)
    for attr in node.attribute:
        if attr.name == "axis":
            attr.i = 1
    assert "weight-axis" in _rules(model)


def test_lint_catches_a_lone_quantize(qdq_model):
    model = copy.deepcopy(qdq_model)
    q = _first(model, "QuantizeLinear", activation=True)
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == q.output[0])
    for node in model.graph.node:  # bypass the DQ: the int8 tensor now reaches a float op
        for i, name in enumerate(node.input):
            if name == dq.output[0]:
                node.input[i] = q.output[0]
    model.graph.node.remove(dq)
    assert "q-dq-pair" in _rules(model)


def _activation_dq_users(model) -> set[str]:
    inits = {t.name for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    users = set()
    for dq in (n for n in model.graph.node if n.op_type == "DequantizeLinear"):
        q = producers.get(dq.input[0])
        if dq.input[0] in inits or (q is not None and q.input[0] in inits):
            continue  # a weight
        users |= {n.op_type for n in model.graph.node if dq.output[0] in n.input}
    return users


def test_qdq_pairs_sit_only_where_int8_is_read(qdq_model):
    """NVIDIA's explicit-quantization placement: on Conv inputs, never on a conv output read by Sigmoid/Relu/Add/Mul."""
    assert _activation_dq_users(qdq_model) == {"Conv"}


def test_lint_catches_qdq_on_a_conv_output_that_feeds_a_float_op(qdq_model):
    model = copy.deepcopy(qdq_model)
    sigmoid = next(n for n in model.graph.node if n.op_type == "Sigmoid")
    template = _first(model, "QuantizeLinear", activation=True)  # reuse a valid scale and zero-point
    tensor = sigmoid.input[0]
    q = helper.make_node("QuantizeLinear", [tensor, template.input[1], template.input[2]], [tensor + "_q"], name="q_on_output")
    dq = helper.make_node("DequantizeLinear", [tensor + "_q", template.input[1], template.input[2]], [tensor + "_dq"],
                          name="dq_on_output")
    sigmoid.input[0] = tensor + "_dq"
    position = list(model.graph.node).index(sigmoid)
    model.graph.node.insert(position, dq)
    model.graph.node.insert(position, q)
    violations = [v for v in lint(model, "8.5.2") if v.rule == "qdq-placement"]
    assert [v.node for v in violations] == ["dq_on_output"] and "Sigmoid" in violations[0].message


POLYGRAPHY = shutil.which("polygraphy") or shutil.which("polygraphy", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(POLYGRAPHY is None, reason="polygraphy is not installed (pip install './sift-deploy[jetson]')")
def test_polygraphy_lint_passes_on_every_jetson_onnx(reference_bundle):
    bundle = reference_bundle("jetson")
    models = sorted(bundle.glob("*.onnx"))
    assert {m.name for m in models} == {"edge.onnx", "edge.int8.qdq.onnx", "cloud.onnx"}
    for model in models:
        proc = subprocess.run([POLYGRAPHY, "check", "lint", str(model)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "PASSED" in proc.stdout + proc.stderr, (model.name, proc.stdout + proc.stderr)


def test_onnxruntime_default_int8_is_not_tensorrt_ready(edge_case, tmp_path):
    """The x86 artifact (uint8 asymmetric activations) must fail the lint: it shows the lint bites."""
    from sift_deploy.backends.onnxruntime.export import export as ort_export

    edge, calib, _, _, _ = edge_case
    result = ort_export(ExportRequest(edge=edge, input_shape=(1, 32, 32), precision="int8", calibration=calib[:64],
                                      calib_method="minmax", out_dir=tmp_path, options={"measure": False}))
    rules = _rules(onnx.load(str(tmp_path / result.files["edge"])))
    assert {"signed-int8", "zero-point"} <= rules


# ---------------------------------------------------------------------------------------------- cache

def test_known_value_and_headers():
    assert calib_cache.amax_to_scale(127 * 0.0078125) == 0.0078125
    assert calib_cache.scale_to_hex(0.0078125) == "3c000000"
    assert calib_cache.hex_to_scale("3c000000") == 0.0078125
    assert calib_cache.header("8.5.2") == "TRT-8502-EntropyCalibration2"
    assert calib_cache.header("8.6.2.3") == "TRT-8602-EntropyCalibration2"
    assert calib_cache.header("10.3.0") == "TRT-100300-EntropyCalibration2"
    assert calib_cache.header("10.13.3", "MinMaxCalibration") == "TRT-101303-MinMaxCalibration"
    with pytest.raises(SiftError, match="MAJOR.MINOR.PATCH"):
        calib_cache.header("jetpack5")


def test_cache_round_trip(tmp_path):
    amax = {"input": 1.0, "/block1/block1.0/Conv_output_0": 3.25, "z": 127 * 0.0078125, "tiny": 1e-6}
    path = calib_cache.write_cache(tmp_path / "edge.calib.cache", amax, "10.3.0")
    lines = path.read_text().splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2" and lines[3] == "z: 3c000000"
    cache = calib_cache.read_cache(path)
    assert cache.version_code == 100300 and cache.algorithm == "EntropyCalibration2"
    for name, value in amax.items():
        assert cache.amax(name) == pytest.approx(value, rel=1e-6)
        assert calib_cache.scale_to_hex(cache.scales[name]) == calib_cache.scale_to_hex(calib_cache.amax_to_scale(value))


def test_exported_cache_matches_the_qdq_scales(edge_case, int8_bundle, qdq_model):
    out_dir, result = int8_bundle
    cache = calib_cache.read_cache(out_dir / result.files["calibration_cache"])
    assert cache.version_code == 8502 and cache.algorithm == "EntropyCalibration2"
    fp32 = onnx.load(str(out_dir / result.files["onnx_fp32"]))
    assert {"input", "z"} <= set(cache.scales)
    assert set(cache.scales) <= {o for n in fp32.graph.node for o in n.output} | {"input"}
    # the input's range: the calibration images normalised with the checkpoint's mean/std
    assert cache.amax("input") == pytest.approx(float(np.abs(edge_case[1]).max()), rel=1e-6)
    inits = {t.name: numpy_helper.to_array(t) for t in qdq_model.graph.initializer}
    checked = 0
    for node in qdq_model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] in cache.scales:
            assert float(inits[node.input[1]]) == pytest.approx(cache.scales[node.input[0]], rel=1e-6)
            checked += 1
    assert checked >= 5


def test_amax_methods_on_a_heavy_tail():
    rng = np.random.default_rng(0)
    x = np.abs(rng.standard_normal(100_000))
    x[:20] *= 30  # a few outliers
    hist, edges = np.histogram(x, bins=2048, range=(0, x.max()))
    minmax = calib_cache.amax_from_histogram(hist, edges, "minmax")
    percentile = calib_cache.amax_from_histogram(hist, edges, "percentile")
    entropy = calib_cache.amax_from_histogram(hist, edges, "entropy")
    assert minmax == pytest.approx(x.max())
    assert entropy < minmax / 2 and percentile < minmax
    assert entropy >= edges[128]  # never clips below 128 bins


# ---------------------------------------------------------------------------------------------- engine

@pytest.mark.tensorrt
@pytest.mark.skipif(not TRT_OK, reason=TRT_MISSING)
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_engine_builds_and_runs(edge_case, tmp_path, precision):
    _, _, held_out, z_ref, _ = edge_case
    result = export(_request(edge_case, tmp_path, precision=precision, build_engine=True))
    assert result.files["edge"] == "edge.plan" and (tmp_path / "edge.plan").is_file()
    with BACKEND.create_runner(Artifacts(folder=tmp_path), result.files["edge"], result.details) as runner:
        z = np.concatenate([runner.infer(held_out[i:i + 32]) for i in range(0, len(held_out), 32)])
    assert cosine_per_image(z_ref, z).mean() >= 0.99
