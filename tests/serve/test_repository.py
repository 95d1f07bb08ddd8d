"""`triton/` in every bundle: each variant's config.pbtxt parsed with Triton's own model-config protobuf
and checked against the ONNX graph it serves; the production ONNX's dequantize; hashing."""

from __future__ import annotations

import shutil

import numpy as np
import onnxruntime as ort
import pytest

from sift_deploy import wire
from sift_deploy.bundle import read_manifest, verify_files
from sift_deploy.profiles import load_profile
from sift_deploy.serve.repository import MODEL_NAME, write_model_repository
from sift_deploy.serve.settings import ServingSettings, settings_of_profile

from .conftest import HAS_TRITONCLIENT, TRITONCLIENT_MISSING

needs_protobuf = pytest.mark.skipif(not HAS_TRITONCLIENT, reason=TRITONCLIENT_MISSING)
ONNX_TO_TRITON = {1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8"}


def parse_config(path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())


def onnx_io(path) -> dict:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    init = {i.name for i in graph.initializer}

    def describe(values):
        return {v.name: (ONNX_TO_TRITON[v.type.tensor_type.elem_type],
                         [d.dim_value if d.dim_value else -1 for d in v.type.tensor_type.shape.dim])
                for v in values if v.name not in init}

    return {"inputs": describe(graph.input), "outputs": describe(graph.output)}


def dtype_name(config_enum: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(config_enum)


def config_io(config) -> dict:
    return {"inputs": {i.name: (dtype_name(i.data_type), list(i.dims)) for i in config.input},
            "outputs": {o.name: (dtype_name(o.data_type), list(o.dims)) for o in config.output}}


@pytest.fixture(scope="module")
def trt_repository(serve_bundle, tmp_path_factory):
    """A repository written with the jetson profile's [serving] (TensorRT plan asked for) next to a cloud.onnx."""
    root = tmp_path_factory.mktemp("trt-repo")
    shutil.copyfile(serve_bundle / "cloud.onnx", root / "cloud.onnx")
    manifest = read_manifest(serve_bundle)
    settings = settings_of_profile(load_profile("jetson"))
    assert settings.tensorrt_plan
    serving = write_model_repository(root, "cloud.onnx", tuple(manifest["features"]["shape"][1:]),
                                     manifest["model"]["num_classes"], manifest["features"]["wire_int8"], settings)
    return root, serving, settings


@needs_protobuf
def test_every_config_parses_and_matches_the_onnx_graph(serve_bundle, trt_repository):
    manifest = read_manifest(serve_bundle)
    trt_root, trt_serving, trt_settings = trt_repository
    x86 = settings_of_profile(load_profile("x86"))
    cloud = onnx_io(serve_bundle / "cloud.onnx")
    (z_dtype, z_dims), = cloud["inputs"].values()
    (logits_name, (logits_dtype, logits_dims)), = cloud["outputs"].items()
    channels = z_dims[1]
    expected_inputs = {"z_q": ("TYPE_UINT8", z_dims[1:]), "scales": ("TYPE_FP32", [channels])}
    expected_outputs = {logits_name: (logits_dtype, logits_dims[1:])}
    cases = [(serve_bundle, manifest["serving"], x86, v) for v in ("python", "onnxruntime")]
    cases += [(trt_root, trt_serving, trt_settings, v) for v in ("python", "onnxruntime", "tensorrt")]
    for root, serving, settings, variant in cases:
        config = parse_config(root / serving["variants"][variant] / MODEL_NAME / "config.pbtxt")
        assert config.name == MODEL_NAME
        assert config_io(config) == {"inputs": expected_inputs, "outputs": expected_outputs}, variant
        assert config.max_batch_size == settings.max_batch_size
        assert list(config.dynamic_batching.preferred_batch_size) == list(settings.preferred_batch_sizes)
        assert config.dynamic_batching.max_queue_delay_microseconds == settings.max_queue_delay_us
        (group,) = config.instance_group
        assert group.count == settings.instance_count
        kind = "KIND_CPU" if variant == "python" else "KIND_GPU"
        assert group.kind == type(group).Kind.Value(kind)
        if variant == "python":
            assert config.backend == "python"
            assert config.parameters["wire"].string_value == "uint8"
            assert onnx_io(root / serving["variants"][variant] / MODEL_NAME / "1" / "cloud.onnx") == cloud
        elif variant == "onnxruntime":
            assert config.platform == "onnxruntime_onnx"
            production = onnx_io(root / serving["variants"][variant] / MODEL_NAME / "1" / "model.onnx")
            # the graph the production server runs has exactly the config's inputs, with the batch axis
            assert {k: (d, dims[1:]) for k, (d, dims) in production["inputs"].items()} == expected_inputs
            assert {k: (d, dims[1:]) for k, (d, dims) in production["outputs"].items()} == expected_outputs
        else:
            assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"
            script = (root / "triton" / "tensorrt" / "build_plan.sh").read_text()
            assert "--maxShapes=z_q:64x12x8x8,scales:64x12" in script


def test_the_repository_is_hashed_in_the_manifest(serve_bundle):
    manifest = read_manifest(serve_bundle)
    names = set(manifest["files"])
    for rel in ("triton/python/sift_cloud/config.pbtxt", "triton/python/sift_cloud/1/model.py",
                "triton/python/sift_cloud/1/cloud.onnx", "triton/production/sift_cloud/config.pbtxt",
                "triton/production/sift_cloud/1/model.onnx"):
        assert rel in names
    assert verify_files(serve_bundle, manifest) == []
    assert manifest["serving"]["model"] == MODEL_NAME and manifest["serving"]["wire"] == "uint8"


def test_production_onnx_dequantizes_like_the_wire_module(serve_bundle, reference):
    params = reference.manifest["features"]["wire_int8"]
    q = wire.quantize(reference.z[:32], params)
    scales = np.tile(np.asarray(params["scales"], np.float32), (len(q), 1))
    production = ort.InferenceSession(str(serve_bundle / "triton/production/sift_cloud/1/model.onnx"),
                                      providers=["CPUExecutionProvider"])  # two inputs: a plain session
    got = production.run(None, {"z_q": q, "scales": scales})[0]
    np.testing.assert_allclose(got, reference.logits[:32], atol=1e-5)


@needs_protobuf
def test_float_wire_and_signed_features(serve_bundle, tmp_path):
    shutil.copyfile(serve_bundle / "cloud.onnx", tmp_path / "cloud.onnx")
    manifest = read_manifest(serve_bundle)
    shape = tuple(manifest["features"]["shape"][1:])
    float_dir, int8_dir = tmp_path / "f", tmp_path / "i"
    for d in (float_dir, int8_dir):
        d.mkdir()
        shutil.copyfile(tmp_path / "cloud.onnx", d / "cloud.onnx")
    write_model_repository(float_dir, "cloud.onnx", shape, 10, manifest["features"]["wire_int8"],
                           ServingSettings(wire="float32", max_batch_size=0))
    config = parse_config(float_dir / "triton/python/sift_cloud/config.pbtxt")
    assert config_io(config)["inputs"] == {"z": ("TYPE_FP32", [-1, *shape])}  # no batching: batch axis in dims
    assert not config.HasField("dynamic_batching")
    assert onnx_io(float_dir / "triton/production/sift_cloud/1/model.onnx") == onnx_io(tmp_path / "cloud.onnx")
    signed = {**manifest["features"]["wire_int8"], "dtype": "int8"}
    write_model_repository(int8_dir, "cloud.onnx", shape, 10, signed, ServingSettings())
    config = parse_config(int8_dir / "triton/python/sift_cloud/config.pbtxt")
    assert config_io(config)["inputs"]["z_q"][0] == "TYPE_INT8"
    assert onnx_io(int8_dir / "triton/production/sift_cloud/1/model.onnx")["inputs"]["z_q"][0] == "TYPE_INT8"
