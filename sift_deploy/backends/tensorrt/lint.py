"""Check an ONNX model against what TensorRT's ONNX parser accepts for explicit INT8 (Q/DQ).

Rules (TensorRT developer guide, "Explicit quantization"; onnx-tensorrt operator support):

- `opset`: the default-domain opset is at most what the target TensorRT's parser supports (17 for
  TensorRT 8.5 / 8.6 = JetPack 5.1 / 6.0; 20 for TensorRT 10.x), and at least 13 when Q/DQ are
  per-channel (the `axis` attribute).
- `domain`: only standard ONNX ops; no `com.microsoft` (or any other custom-domain) nodes.
- `zero-point`: every QuantizeLinear / DequantizeLinear has an explicit zero-point that is all
  zeros (TensorRT supports symmetric quantization only).
- `signed-int8`: the quantized type is int8 (a missing zero-point means uint8).
- `scale`: scales are constant, finite and positive.
- `per-tensor-activation`: activations are quantized per tensor (scalar scale).
- `weight-axis`: per-channel quantization is on the output-channel axis of the weight (axis 0 for
  Conv, 1 for ConvTranspose).
- `q-dq-pair`: a QuantizeLinear feeds only DequantizeLinear nodes, and a DequantizeLinear reads a
  QuantizeLinear or a constant int8 initializer.
- `qdq-placement`: an activation's DequantizeLinear feeds only ops that read int8 (Conv,
  ConvTranspose, MatMul, Gemm). NVIDIA's guidance: Q/DQ go on the inputs of quantizable ops; a
  pair on a weighted layer's output that feeds Sigmoid, Relu, Add or Mul makes TensorRT compute that
  op from a rounded tensor and often blocks its fusion into the layer.

Needs only the `onnx` package; runs on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import SiftError

MAX_OPSET = {8: 17, 9: 17, 10: 20}  # TensorRT major -> highest ONNX opset its parser supports
MIN_PER_CHANNEL_OPSET = 13
STANDARD_DOMAINS = ("", "ai.onnx")
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1}
INT8_CONSUMERS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass(frozen=True)
class Violation:
    rule: str
    node: str  # node name ('' for model-level rules)
    tensor: str  # the tensor concerned ('' if none)
    message: str

    def __str__(self) -> str:
        where = " ".join(part for part in (f"node {self.node!r}" if self.node else "",
                                             f"tensor {self.tensor!r}" if self.tensor else "") if part)
        return f"[{self.rule}] {where}: {self.message}" if where else f"[{self.rule}] {self.message}"


def max_opset_for(trt_version: str) -> int:
    from .calib_cache import parse_trt_version

    major, _, _ = parse_trt_version(trt_version)
    if major not in MAX_OPSET:
        raise SiftError(f"TensorRT {trt_version} is not a known target; supported: 8.5, 8.6 (JetPack 5.1 / 6.0) and 10.x")
    return MAX_OPSET[major]


def lint(model, trt_version: str | None = None, max_opset: int | None = None) -> list[Violation]:
    """Violations of TensorRT's explicit-quantization rules in `model` (a ModelProto or a path)."""
    import onnx
    from onnx import numpy_helper

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    if max_opset is None:
        max_opset = max_opset_for(trt_version) if trt_version else MAX_OPSET[8]
    graph = model.graph
    found: list[Violation] = []

    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset is None:
        found.append(Violation("opset", "", "", "the model imports no default-domain opset"))
        opset = 0
    elif opset > max_opset:
        target = f"TensorRT {trt_version}" if trt_version else "the target TensorRT"
        found.append(Violation("opset", "", "", f"opset {opset} is above {max_opset}, the highest {target} parses; "
                                                f"export with opset <= {max_opset}"))

    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    for node in graph.node:
        label = node.name or f"{node.op_type}({node.output[0] if node.output else ''})"
        if node.domain not in STANDARD_DOMAINS:
            found.append(Violation("domain", label, node.output[0] if node.output else "",
                                   f"{node.domain}::{node.op_type} is not a standard ONNX op; TensorRT's parser rejects it"))
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        data = node.input[0]
        scale_name = node.input[1] if len(node.input) > 1 else ""
        zp_name = node.input[2] if len(node.input) > 2 else ""
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)

        scale = consts.get(scale_name)
        if scale is None:
            found.append(Violation("scale", label, scale_name, "the scale is not a constant"))
        elif not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            found.append(Violation("scale", label, scale_name, "scales must be finite and positive"))

        if not zp_name:
            found.append(Violation("signed-int8", label, data, "no zero-point: the quantized type defaults to uint8; "
                                                                 "TensorRT needs int8 with zero-point 0"))
        else:
            zp = consts.get(zp_name)
            if zp is None:
                found.append(Violation("zero-point", label, zp_name, "the zero-point is not a constant"))
            else:
                if zp.dtype != np.int8:
                    found.append(Violation("signed-int8", label, zp_name, f"quantized type is {zp.dtype}, not int8"))
                if np.any(zp != 0):
                    found.append(Violation("zero-point", label, zp_name,
                                           f"zero-point {zp.ravel()[:4].tolist()} is not 0; TensorRT supports symmetric quantization only"))

        per_channel = scale is not None and scale.size > 1
        is_weight = _is_weight(node, data, consts, producers)
        if per_channel and not is_weight:
            found.append(Violation("per-tensor-activation", label, data,
                                   f"activation quantized per channel ({scale.size} scales on axis {axis}); use one scale per tensor"))
        if per_channel and is_weight:
            if opset and opset < MIN_PER_CHANNEL_OPSET:
                found.append(Violation("opset", label, data, f"per-channel Q/DQ needs opset >= {MIN_PER_CHANNEL_OPSET}"))
            rank = _rank(data, consts, producers)
            norm_axis = axis + rank if axis < 0 and rank else axis
            for user in _weight_users(node, consumers):
                want = WEIGHT_AXIS.get(user.op_type)
                if want is not None and norm_axis != want:
                    found.append(Violation("weight-axis", label, data,
                                           f"per-channel weight quantization on axis {axis}; {user.op_type} needs axis {want}"))

        if node.op_type == "DequantizeLinear" and not is_weight:
            float_users = sorted({u.op_type for u in consumers.get(node.output[0], []) if u.op_type not in INT8_CONSUMERS})
            if float_users:
                found.append(Violation("qdq-placement", label, data,
                                       f"Q/DQ on a tensor that {', '.join(float_users)} reads in float; quantize only "
                                       f"the inputs of {', '.join(INT8_CONSUMERS)}"))
        if node.op_type == "QuantizeLinear":
            bad = [u for u in consumers.get(node.output[0], []) if u.op_type != "DequantizeLinear"]
            if bad or node.output[0] in {o.name for o in graph.output}:
                found.append(Violation("q-dq-pair", label, node.output[0],
                                       "a QuantizeLinear must feed DequantizeLinear nodes only"))
        else:
            src = producers.get(data)
            if not (data in consts or (src is not None and src.op_type == "QuantizeLinear")):
                found.append(Violation("q-dq-pair", label, data,
                                       "a DequantizeLinear must read a QuantizeLinear or a constant int8 weight"))
    return found


def _is_weight(node, data: str, consts: dict, producers: dict) -> bool:
    """True when the Q/DQ quantizes a constant (a weight), directly or through its Q."""
    if data in consts:
        return True
    src = producers.get(data)
    return src is not None and src.op_type == "QuantizeLinear" and src.input[0] in consts


def _rank(data: str, consts: dict, producers: dict) -> int:
    if data in consts:
        return consts[data].ndim
    src = producers.get(data)
    if src is not None and src.input and src.input[0] in consts:
        return consts[src.input[0]].ndim
    return 0


def _weight_users(node, consumers: dict) -> list:
    """The ops that consume this weight: through its DequantizeLinear if `node` is the Q."""
    users = consumers.get(node.output[0], [])
    if node.op_type == "QuantizeLinear":
        return [u2 for u in users if u.op_type == "DequantizeLinear" for u2 in consumers.get(u.output[0], [])]
    return users


def check(model, trt_version: str | None = None) -> None:
    """Raise SiftError listing every violation (for export)."""
    problems = lint(model, trt_version)
    if problems:
        shown = "; ".join(str(p) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise SiftError(f"the ONNX model breaks TensorRT's rules: {shown}{more}")
