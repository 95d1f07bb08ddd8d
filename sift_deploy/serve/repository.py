"""The Triton model repository written into every bundle (`triton/`): the cloud half as one model
that takes the wire format and returns logits.

```
triton/
  python/sift_cloud/config.pbtxt        backend "python": numpy dequantize + cloud.onnx in ONNX Runtime
  python/sift_cloud/1/model.py          (what runs on a CPU-only machine, and in our tests)
  python/sift_cloud/1/cloud.onnx
  production/sift_cloud/config.pbtxt    platform "onnxruntime_onnx", KIND_GPU: production GPU servers
  production/sift_cloud/1/model.onnx    cloud.onnx with the dequantize prepended (Cast + Mul)
  tensorrt/sift_cloud/config.pbtxt      platform "tensorrt_plan" (only when the profile asks for it)
  tensorrt/build_plan.sh                trtexec: production model.onnx -> tensorrt/sift_cloud/1/model.plan
```
Every variant has the same model name, inputs and outputs, so a client does not know which one
answers. The wire format (profile `[serving] wire`):

- `uint8` (default): `z_q` UINT8 (N, C, H, W) and `scales` FP32 (N, C); z = z_q * scales[:, :, None, None]
  (zero-points are 0, see sift_deploy/wire.py);
- `float32`: `z` FP32 (N, C, H, W).

Output: `logits` FP32 (N, classes). Batch size, dynamic batching and instance groups come from
the profile. The configs are written as text (no tritonclient needed to export); the tests parse
them with Triton's own model-config protobuf.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

from .settings import ServingSettings

MODEL_NAME = "sift_cloud"
REPOSITORY_DIR = "triton"
VARIANT_DIRS = {"python": "triton/python", "onnxruntime": "triton/production", "tensorrt": "triton/tensorrt"}
PRODUCTION_FILE = "model.onnx"
PYTHON_ONNX_FILE = "cloud.onnx"
PLAN_FILE = "model.plan"
DTYPES = {"uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "float32": "TYPE_FP32"}  # numpy name -> config data_type
WIRE_DTYPES = {"TYPE_UINT8": "UINT8", "TYPE_INT8": "INT8", "TYPE_FP32": "FP32"}  # config -> protocol datatype


def wire_io(settings: ServingSettings, feature_shape: tuple[int, ...], num_classes: int, wire_params: dict) -> dict:
    """Names, dtypes and per-image dims of the model's inputs and outputs (without the batch axis).

    The quantized wire ("uint8") carries z in the bundle's wire dtype: uint8 for features that are
    never negative (the reference model), int8 otherwise (see sift_deploy/wire.py)."""
    channels = int(feature_shape[0])
    if settings.wire == "uint8":
        inputs = [{"name": "z_q", "data_type": DTYPES[wire_params["dtype"]], "dims": [int(d) for d in feature_shape]},
                  {"name": "scales", "data_type": "TYPE_FP32", "dims": [channels]}]
    else:
        inputs = [{"name": "z", "data_type": "TYPE_FP32", "dims": [int(d) for d in feature_shape]}]
    outputs = [{"name": "logits", "data_type": "TYPE_FP32", "dims": [int(num_classes)]}]
    return {"inputs": inputs, "outputs": outputs}


def _tensor_block(kind: str, tensors: list[dict], batched: bool) -> str:
    rows = []
    for t in tensors:
        dims = t["dims"] if batched else [-1, *t["dims"]]
        rows.append(f'  {{\n    name: "{t["name"]}"\n    data_type: {t["data_type"]}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}')
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def config_text(variant: str, settings: ServingSettings, io: dict, parameters: dict[str, str] | None = None) -> str:
    """config.pbtxt of one variant: python, onnxruntime or tensorrt."""
    head = {"python": 'backend: "python"\n',
            "onnxruntime": 'platform: "onnxruntime_onnx"\n',
            "tensorrt": f'platform: "tensorrt_plan"\ndefault_model_filename: "{PLAN_FILE}"\n'}[variant]
    kind = "KIND_CPU" if variant == "python" else "KIND_GPU"
    batched = settings.max_batch_size > 0
    text = f'name: "{MODEL_NAME}"\n{head}max_batch_size: {settings.max_batch_size}\n'
    text += _tensor_block("input", io["inputs"], batched)
    text += _tensor_block("output", io["outputs"], batched)
    if batched:
        text += "dynamic_batching {\n"
        if settings.preferred_batch_sizes:
            text += f"  preferred_batch_size: [ {', '.join(map(str, settings.preferred_batch_sizes))} ]\n"
        text += f"  max_queue_delay_microseconds: {settings.max_queue_delay_us}\n}}\n"
    text += f"instance_group [\n  {{\n    count: {settings.instance_count}\n    kind: {kind}\n  }}\n]\n"
    for key, value in (parameters or {}).items():
        text += f'parameters {{\n  key: "{key}"\n  value: {{ string_value: "{value}" }}\n}}\n'
    return text


def build_production_onnx(cloud_path: Path, out_path: Path, settings: ServingSettings, wire_dtype: str = "uint8") -> None:
    """cloud.onnx with the wire dequantize as its first nodes: z = Cast(z_q, float) * Reshape(scales, (-1, C, 1, 1))."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import numpy as np

    model = onnx.load(str(cloud_path))
    graph = model.graph
    if settings.wire == "float32":
        onnx.save(model, str(out_path))
        return
    (z_in,) = [i for i in graph.input if i.name == "z"]
    dims = [d.dim_param or d.dim_value for d in z_in.type.tensor_type.shape.dim]
    batch, channels, rest = dims[0], dims[1], dims[2:]
    graph.input.remove(z_in)
    graph.input.insert(0, helper.make_tensor_value_info("scales", TensorProto.FLOAT, [batch, channels]))
    q_type = TensorProto.INT8 if wire_dtype == "int8" else TensorProto.UINT8
    graph.input.insert(0, helper.make_tensor_value_info("z_q", q_type, [batch, channels, *rest]))
    graph.initializer.append(numpy_helper.from_array(np.asarray([-1, channels] + [1] * len(rest), np.int64),
                                                     "wire_scale_shape"))
    nodes = [helper.make_node("Cast", ["z_q"], ["z_q_float"], name="wire_cast", to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["scales", "wire_scale_shape"], ["wire_scales"], name="wire_scales"),
             helper.make_node("Mul", ["z_q_float", "wire_scales"], ["z"], name="wire_dequantize")]
    for node in reversed(nodes):
        graph.node.insert(0, node)
    graph.doc_string = "sift-deploy cloud half taking the uint8 wire format (z_q, per-channel scales)"
    onnx.checker.check_model(model)
    onnx.save(model, str(out_path))


BUILD_PLAN = """#!/usr/bin/env bash
# Build the TensorRT plan of the cloud half on the GPU server that will serve it (a plan is tied to
# its GPU and TensorRT version, so it cannot ship in the bundle). Needs trtexec (TensorRT).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p {model}/1
trtexec --onnx=../production/{model}/1/{onnx} --saveEngine={model}/1/{plan} \\
  --minShapes={min_shapes} --optShapes={opt_shapes} --maxShapes={max_shapes} "$@"
"""


def _shapes(io: dict, batch: int) -> str:
    return ",".join(f"{t['name']}:{'x'.join(str(d) for d in [batch, *t['dims']])}" for t in io["inputs"])


def write_model_repository(bundle_dir: Path, cloud_file: str, feature_shape: tuple[int, ...], num_classes: int,
                           wire_params: dict, settings: ServingSettings, threads: int = 1) -> dict:
    """Write `triton/` into a (temporary) bundle folder; return the manifest's `serving` section."""
    bundle_dir = Path(bundle_dir)
    io = wire_io(settings, feature_shape, num_classes, wire_params)
    params = {"wire": settings.wire, "onnx_file": PYTHON_ONNX_FILE, "channels": str(int(feature_shape[0])),
              "threads": str(settings.threads_per_instance or threads)}
    variants = {"python": VARIANT_DIRS["python"]}

    python_dir = bundle_dir / VARIANT_DIRS["python"] / MODEL_NAME
    (python_dir / "1").mkdir(parents=True)
    (python_dir / "config.pbtxt").write_text(config_text("python", settings, io, params))
    shutil.copyfile(Path(__file__).with_name("triton_model.py"), python_dir / "1" / "model.py")
    shutil.copyfile(bundle_dir / cloud_file, python_dir / "1" / PYTHON_ONNX_FILE)

    notes = ["python: CPU, Triton's python backend (what `sift-deploy serve` starts)"]
    if importlib.util.find_spec("onnx") is None:  # an rpi-export machine may lack it: the python variant still ships
        notes.append("onnxruntime: not written, the onnx package is missing at export (pip install onnx)")
        settings = dataclasses.replace(settings, tensorrt_plan=False)
    else:
        production_dir = bundle_dir / VARIANT_DIRS["onnxruntime"] / MODEL_NAME
        (production_dir / "1").mkdir(parents=True)
        (production_dir / "config.pbtxt").write_text(config_text("onnxruntime", settings, io))
        build_production_onnx(bundle_dir / cloud_file, production_dir / "1" / PRODUCTION_FILE, settings,
                              wire_params["dtype"])
        variants["onnxruntime"] = VARIANT_DIRS["onnxruntime"]
        notes.append("onnxruntime: production GPU servers, Triton's onnxruntime backend (KIND_GPU)")

    if settings.tensorrt_plan:
        trt_root = bundle_dir / VARIANT_DIRS["tensorrt"]
        (trt_root / MODEL_NAME / "1").mkdir(parents=True)
        (trt_root / MODEL_NAME / "config.pbtxt").write_text(config_text("tensorrt", settings, io))
        top = max(settings.max_batch_size, 1)
        opt = max(settings.preferred_batch_sizes or (top,))
        script = trt_root / "build_plan.sh"
        script.write_text(BUILD_PLAN.format(model=MODEL_NAME, onnx=PRODUCTION_FILE, plan=PLAN_FILE,
                                            min_shapes=_shapes(io, 1), opt_shapes=_shapes(io, opt),
                                            max_shapes=_shapes(io, top)))
        script.chmod(0o755)
        variants["tensorrt"] = VARIANT_DIRS["tensorrt"]
        notes.append("tensorrt: run triton/tensorrt/build_plan.sh on the GPU server first (a plan is tied to its "
                     "GPU and TensorRT version, so it is not in the bundle)")
    return {
        "model": MODEL_NAME,
        "wire": settings.wire,
        "variants": variants,
        "inputs": io["inputs"],
        "outputs": io["outputs"],
        "settings": settings.as_dict(),
        "notes": notes,
    }
