"""Float edge module -> `.tflite` with litert-torch (no TensorFlow needed).

Precisions:
- fp32: `litert_torch.convert(edge, (x,))`.
- fp16: the same graph with fp16 weights (litert-torch's `full_fp16_recipe`: ai-edge-quantizer
  float casting, weight-only). Weights are stored in fp16 and dequantized to fp32 at load time;
  activations and arithmetic stay fp32, so it shrinks the file (CNN edge: 70 -> 56 KB; the rest
  is graph structure), not the compute.
- int8: PT2E static quantization. Weights int8 per-channel symmetric, activations int8 per-tensor
  affine, biases int32, sigmoid outputs at the fixed 1/256 scale TFLite's LOGISTIC kernel
  requires. The input tensor is int8; its scale and zero-point are recorded in `details` and the
  runner quantizes.

  Full-integer (int8 output too) is what a trained SiftFunnel edge cannot afford: its z is sparse
  and its channels have very different ranges (reference checkpoint: two channels peak near 3.8,
  five below 0.07, the rest are dead), and a TFLite activation tensor has one scale. Holding z in
  one int8 tensor alone drops its cosine to 0.88, and the full-integer file reaches cosine 0.90 and
  92.6 % top-1 agreement on the held-out images. So option `float_tail` ("auto" by default)
  keeps the funnel's tail in fp32 (its last conv, then the SE and CBAM gates: 15 % of the MACs;
  cosine 0.996, 99.6 % top-1 agreement), and the file outputs float32 z. "auto" decides it on the
  calibration images (the cosine of z in one int8 tensor below FULL_INTEGER_MIN_COSINE);
  `float_tail = false` forces full-integer int8 I/O, `true` forces the float tail. The decision
  and its numbers go into `details["quantization"]["float_tail"]`. `options["int8_layers"]` (names
  of the edge's top-level modules, see `quantizable_layers`) overrides that: exactly those modules
  are int8 and the others fp32; z is float32 when the last module is fp32 (the precision search).

The stock litert-torch quantizer needs one patch for the SiftFunnel attention blocks
(`_share_fixed_and_shared_inputs`): an input edge whose producer has a fixed (sigmoid) or shared
output quantization spec reuses the producer's observer. Without it PT2E inserts a requantize
between the sigmoid (scale 1/256) and the gating multiply, the converter folds it into a RESHAPE,
and conversion fails with "'tfl.reshape' op quantization parameters violate the same scale
constraint". Two more annotation passes are not needed to convert but keep the graph integer
(they remove 5 of the 6 DEQUANTIZE ops of the CNN edge at the same accuracy): `_annotate_missed`
quantizes the convs and adds the stock pattern matcher skips (CBAM's shared MLP, the chained sum of
TripletAttention) and `_share_amax` gives each channel/spatial max its input's scale (exact). The
one float island left is SiLU in the funnel (DEQUANTIZE, LOGISTIC/MUL in fp32, QUANTIZE). The
model-side rewrites conversion needs live in `models/blocks.py`.

Calibration methods map to PT2E activation observers: minmax -> MinMaxObserver; entropy and
percentile -> HistogramObserver (PyTorch's histogram observer searches the clipping range that
minimises the L2 quantization error; it is neither KL-entropy nor a percentile, and `details`
says so).

Batch: TFLite graphs are static-shape and the converter bakes the batch-1 shapes into reshape
constants, so `resize_tensor_input` to another batch fails (XNNPACK: "failed to reshape"; the builtin
kernels: "num_input_elements != num_output_elements" in RESHAPE [1, 32, 32, 1]). Exporting with a
dynamic batch axis (`dynamic_shapes`) still leaves batch-specialised reshapes and takes 3x longer. So
the edge file is a batch-1 graph, and option `batch_variants` (e.g. [32]) adds one static batch-N
graph per N, converted from the same module (int8: the same calibrated PT2E graph, so the same
scales) as `edge.<precision>.b<N>.tflite`. The runner runs a batch of N (or a multiple of N) through
the batch-N graph, and anything else through the batch-1 graph, one invocation per image.

litert-torch takes ~4.5 s and ~600 MB to import (it imports jax), so it is imported inside
`export()` only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np

from ...errors import SiftError
from ..base import ExportRequest, ExportResult, artifact_tensor

SUPPORTED_PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("NCHW", "NHWC")
INSTALL_HINT = "pip install './sift-deploy[rpi-export]'"
CALIBRATION_BATCH = 64
# Activation observer eps: the smallest scale an activation may get. litert-torch's default is
# 2**-12, which would cap the resolution of small features (z of an untrained edge peaks near
# 0.02, i.e. only ~80 int8 steps); 2**-20 lets the scale follow the observed range.
ACTIVATION_EPS = 2.0 ** -20
OBSERVERS = {"minmax": "MinMaxObserver", "entropy": "HistogramObserver", "percentile": "HistogramObserver"}
OBSERVER_NOTES = {
    "minmax": "running min/max of each activation over the calibration images",
    "entropy": "PT2E has no KL-entropy observer; HistogramObserver (clipping range that minimises the "
               "L2 quantization error over a 2048-bin histogram) is used instead",
    "percentile": "PT2E has no percentile observer; HistogramObserver (clipping range that minimises the "
                  "L2 quantization error over a 2048-bin histogram) is used instead",
}
# "auto" float tail: below this cosine of z stored in one per-tensor int8 tensor, the funnel's tail
# (last conv, SE, CBAM) stays fp32 and the model outputs float32 z.
FULL_INTEGER_MIN_COSINE = 0.999
INT8_COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # what an int8 module must run in int8
BATCH_HANDLING = ("static batch-1 graph: the converter bakes batch-1 reshape shapes into the file, so "
                  "resize_tensor_input to another batch fails in XNNPACK; a batch of N runs as one call of a "
                  "batch-N variant file where the bundle has one (option batch_variants), else once per image")


def edge_file_name(precision: str, batch: int = 1) -> str:
    return f"edge.{precision}.tflite" if batch == 1 else f"edge.{precision}.b{batch}.tflite"


def _batch_variants(request: ExportRequest) -> list[int]:
    raw = request.options.get("batch_variants", [])
    if not isinstance(raw, (list, tuple)) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in raw):
        raise SiftError(f"batch_variants must be a list of batch sizes (integers >= 1), e.g. [32]; got {raw!r}")
    return sorted({int(n) for n in raw if n > 1})


def _versions() -> dict[str, str]:
    out = {}
    for package in ("litert-torch", "litert-converter", "ai-edge-litert", "ai-edge-quantizer", "torch", "torchao"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


@contextlib.contextmanager
def _quiet_progress():
    """litert-torch prints a [START]/[DONE] line per conversion step; the CLI has its own progress."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _import_litert_torch():
    # The converter's C++ logging (absl/glog) would print INFO lines into the user's terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import litert_torch
    except ImportError as exc:
        raise SiftError(f"litert-torch is not installed, so the edge cannot be exported to .tflite ({exc}); "
                        f"{INSTALL_HINT}") from exc
    return litert_torch


def _annotate_missed(model, config) -> int:
    """Annotate the convs and adds the stock pattern matcher skips, then redo the passes that depend
    on them. It skips a conv whose weight another conv already uses (CBAM's shared 1x1 MLP, run on
    the average- and the max-pooled branch) and all but the last add of a chained `a + b + c`
    (TripletAttention's sum), which leaves float islands (DEQUANTIZE ... QUANTIZE) in the graph.
    Returns how many nodes it annotated."""
    import torch
    from litert_torch.quantize.pt2e_quantizer_utils import (OP_TO_ANNOTATOR, get_bias_qspec, get_input_act_qspec,
                                                            get_output_act_qspec, get_weight_qspec,
                                                            propagate_annotation)
    from torch.fx import Node
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    def annotated(node) -> bool:
        annotation = node.meta.get("quantization_annotation")
        return annotation is not None and annotation._annotated

    convs = (torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    relus = (torch.ops.aten.relu.default, torch.ops.aten.relu_.default)
    changed = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or annotated(node):
            continue
        if node.target in convs and isinstance(node.args[0], Node) and isinstance(node.args[1], Node):
            inputs = {node.args[0]: get_input_act_qspec(config), node.args[1]: get_weight_qspec(config)}
            if len(node.args) > 2 and isinstance(node.args[2], Node):
                inputs[node.args[2]] = get_bias_qspec(config)
            users = list(node.users)
            if len(users) == 1 and users[0].target in relus and not annotated(users[0]):
                node.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
                users[0].meta["quantization_annotation"] = QuantizationAnnotation(
                    output_qspec=get_output_act_qspec(config), _annotated=True)
            else:
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map=inputs, output_qspec=get_output_act_qspec(config), _annotated=True)
            changed += 1
        elif node.target == torch.ops.aten.add.Tensor and all(isinstance(a, Node) for a in node.args[:2]):
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map={a: get_input_act_qspec(config) for a in node.args[:2]},
                output_qspec=get_output_act_qspec(config), _annotated=True)
            changed += 1
    if changed:
        OP_TO_ANNOTATOR["fixed_qparams"](model, config, None)
        propagate_annotation(model)
    return changed


def _share_amax(model) -> int:
    """Give every unannotated `amax` the quantization of its input (max commutes with the monotone
    quantization map, so this is exact). The stock quantizer leaves amax out, which makes a float
    island (DEQUANTIZE, REDUCE_MAX, QUANTIZE) in every attention gate. Returns the count."""
    import torch
    from torch.fx import Node
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    changed = 0
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target != torch.ops.aten.amax.default:
            continue
        source = node.args[0]
        produced = source.meta.get("quantization_annotation") if isinstance(source, Node) else None
        if produced is None or produced.output_qspec is None:
            continue
        annotation = node.meta.get("quantization_annotation")
        if annotation is not None and annotation._annotated:
            continue
        shared = SharedQuantizationSpec(source)
        node.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={source: shared}, output_qspec=shared, _annotated=True)
        changed += 1
    return changed


def _share_fixed_and_shared_inputs(model) -> int:
    """Make every input edge whose producer has a fixed or shared output qspec reuse that output's
    observer, so no requantize is inserted behind sigmoid gates and layout ops. Returns the count."""
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec, SharedQuantizationSpec

    changed = 0
    for node in model.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if annotation is None:
            continue
        for producer, spec in list(annotation.input_qspec_map.items()):
            produced = producer.meta.get("quantization_annotation")
            if produced is None or produced.output_qspec is None or isinstance(spec, SharedQuantizationSpec):
                continue
            if isinstance(produced.output_qspec, (FixedQParamsQuantizationSpec, SharedQuantizationSpec)):
                annotation.input_qspec_map[producer] = SharedQuantizationSpec(producer)
                changed += 1
    return changed


def _keep_float(model, prefixes: tuple[str, ...], config) -> int:
    """Remove the quantization of every node inside the modules named by `prefixes` (and of what only
    they feed, e.g. the output transpose of an NHWC export), so that part runs in fp32. A quantized
    node that shared its qparams with a node now in float gets its own observer. Returns the count."""
    from torch.fx import Node
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    def in_prefixes(node) -> bool:
        stack = node.meta.get("nn_module_stack") or {}
        return any(path == p or path.startswith(p + ".") for path, _ in stack.values() for p in prefixes)

    floating: set = set()
    for node in model.graph.nodes:
        if node.op != "call_function":
            continue
        activations = [a for a in node.all_input_nodes if a.op != "get_attr"]
        if in_prefixes(node) or (activations and all(a in floating for a in activations)):
            floating.add(node)
    for node in floating:
        node.meta.pop("quantization_annotation", None)

    def refers_to_float(spec) -> bool:
        if not isinstance(spec, SharedQuantizationSpec):
            return False
        ref = spec.edge_or_node
        return any(r in floating for r in (ref if isinstance(ref, tuple) else (ref,)) if isinstance(r, Node))

    for node in model.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if annotation is None:
            continue
        for producer, spec in list(annotation.input_qspec_map.items()):
            if producer in floating or refers_to_float(spec):
                annotation.input_qspec_map[producer] = config.input_activation
        if refers_to_float(annotation.output_qspec):
            annotation.output_qspec = config.output_activation
    return len(floating)


def funnel_tail(edge) -> list[str]:
    """Names of the SiftFunnel edge's tail: the whole funnel (the edge's last `nn.Sequential` child
    with a conv) and everything after it (the SE and CBAM gates on the transmitted channels).

    Keeping only the funnel's last conv in float gave 98.69% top-1 agreement on the reference
    (below the 99% bound); keeping the whole funnel in float gave 99.26%."""
    from torch import nn

    children = list(edge.named_children())
    for index in range(len(children) - 1, -1, -1):
        name, child = children[index]
        if isinstance(child, nn.Sequential) and any(isinstance(layer, nn.Conv2d) for layer in child):
            return [name] + [n for n, _ in children[index + 1:]]
    return []


def _output_int8_cosine(edge, calibration) -> float:
    """Mean per-image cosine between the float z of the calibration images and z stored in one
    per-tensor int8 tensor (min/max range): what a full-integer output alone costs."""
    from ...parity import cosine_per_image
    from ..torch.runner import torch_outputs

    z = torch_outputs(edge, np.ascontiguousarray(calibration, dtype=np.float32))
    lo, hi = min(float(z.min()), 0.0), max(float(z.max()), 0.0)
    scale = max((hi - lo) / 255.0, 1e-12)
    zero_point = np.round(-128 - lo / scale)
    zq = (np.clip(np.round(z / scale) + zero_point, -128, 127) - zero_point) * scale
    return float(cosine_per_image(z, zq).mean())


def _sharing_quantizer(calib_method: str, float_prefixes: tuple[str, ...] = ()):
    """litert-torch's PT2EQuantizer (symmetric per-channel static config) with the shared-edge patch,
    the activation observer chosen by the calibration method, and the modules in `float_prefixes`
    left in fp32."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    class SharingPT2EQuantizer(PT2EQuantizer):
        shared_amax = 0
        shared_edges = 0
        completed = 0
        float_nodes = 0

        def annotate(self, model):
            model = super().annotate(model)
            self.completed = _annotate_missed(model, self.global_config)
            self.shared_amax = _share_amax(model)
            self.shared_edges = _share_fixed_and_shared_inputs(model)
            if float_prefixes:
                self.float_nodes = _keep_float(model, float_prefixes, self.global_config)
            return model

    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    observer = {"minmax": MinMaxObserver, "entropy": HistogramObserver, "percentile": HistogramObserver}[calib_method]
    activation = dataclasses.replace(config.input_activation,
                                     observer_or_fake_quant_ctr=observer.with_args(eps=ACTIVATION_EPS))
    config = dataclasses.replace(config, input_activation=activation, output_activation=activation)
    return SharingPT2EQuantizer().set_global(config)


def _calibrated_graph(module, calibration, quantizer, seed: int):
    """torch.export -> prepare_pt2e -> observers see the calibration images -> convert_pt2e.

    The graph for calibration is exported with a dynamic batch axis so the images go through in
    batches; a model that cannot export that way is calibrated one image at a time.
    """
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(seed)
    data = torch.from_numpy(np.ascontiguousarray(calibration, dtype=np.float32))
    batch = CALIBRATION_BATCH
    try:
        exported = torch.export.export(module, (data[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    except Exception:  # noqa: BLE001 - any export failure here only costs speed
        exported, batch = torch.export.export(module, (data[:1],)), 1
    prepared = prepare_pt2e(exported.module(), quantizer)
    with torch.no_grad():
        for start in range(0, len(data), batch):
            prepared(data[start:start + batch])
    graph = convert_pt2e(prepared, fold_quantize=False)
    # The graph came from an eval-mode module (BatchNorm already in inference form); clearing the flag
    # only stops litert-torch warning that the model "is converted in training mode".
    for submodule in graph.modules():
        submodule.training = False
    return graph, batch


def _tensor_info(detail: dict) -> dict:
    scale, zero_point = detail["quantization"]
    info = {"name": detail["name"], "shape": [int(v) for v in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name}
    info["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)} if scale else None
    return info


def _artifact_tensor(info: dict) -> dict:
    quantization = info["quantization"] or {}
    return artifact_tensor(info["name"], info["dtype"], info["shape"], quantization.get("scale"),
                           quantization.get("zero_point"))


def _inspect(path: Path) -> dict:
    """I/O tensors and op counts of the written file, read back with the runtime."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise SiftError(f"the exported edge has {len(inputs)} inputs and {len(outputs)} outputs; expected 1 and 1")
    out = {"input": _tensor_info(inputs[0]), "output": _tensor_info(outputs[0])}
    try:
        ops = interpreter._get_ops_details()
        out["ops"] = dict(sorted(Counter(op["op_name"] for op in ops).items()))
        dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
        out["int8_compute_ops"] = sum(1 for op in ops if op["op_name"] in INT8_COMPUTE_OPS
                                      and any(dtypes.get(i) == np.int8 for i in op["inputs"] if i >= 0))
    except (AttributeError, KeyError):
        pass
    return out


def quantizable_layers(request: ExportRequest) -> list[str]:
    """The edge's top-level modules with weights: the groups `options["int8_layers"]` may list."""
    return [name for name, child in request.edge.named_children() if any(True for _ in child.parameters())]


def rule_int8_layers(request: ExportRequest, details: dict) -> list[str]:
    """Every module group but the funnel's tail, where a default export kept it float."""
    tail = details["quantization"].get("float_tail") or {}
    floating = set(tail.get("modules") or []) if tail.get("used") else set()
    return [name for name in quantizable_layers(request) if name not in floating]


def _chosen_float_layers(request: ExportRequest, edge) -> dict:
    """`int8_layers` given: every other group stays fp32; z is float when the last group is."""
    groups = quantizable_layers(request)
    chosen = list(request.options["int8_layers"])
    unknown = [name for name in chosen if name not in groups]
    if unknown:
        raise SiftError(f"int8_layers names modules the litert edge does not have: {', '.join(unknown)}; "
                        f"quantizable layers: {', '.join(groups)}")
    floating = [name for name in groups if name not in chosen]
    last = [name for name, _ in edge.named_children()][-1]
    return {"mode": "int8_layers", "modules": floating, "int8_layers": chosen, "used": last in floating,
            "reason": "int8_layers set by the caller (the precision search); z is float32 when the last module is fp32"}


def _float_tail(request: ExportRequest, edge) -> dict:
    """Decide whether the funnel's tail stays fp32 (option `float_tail`: "auto", true or false)."""
    if request.options.get("int8_layers") is not None:
        return _chosen_float_layers(request, edge)
    mode = request.options.get("float_tail", "auto")
    modules = funnel_tail(edge)
    out = {"mode": mode, "modules": modules}
    if mode == "auto":
        cosine = _output_int8_cosine(edge, request.calibration)
        out["output_int8_cosine"] = round(cosine, 6)
        out["used"] = bool(modules) and cosine < FULL_INTEGER_MIN_COSINE
        out["reason"] = (f"z held in one per-tensor int8 tensor reaches cosine {cosine:.4f} on the calibration "
                         f"images ({'below' if cosine < FULL_INTEGER_MIN_COSINE else 'at or above'} "
                         f"{FULL_INTEGER_MIN_COSINE}): SiftFunnel features are sparse with channels of very "
                         "different ranges, and TFLite activations have one scale per tensor")
    else:
        out["used"] = bool(mode) and bool(modules)
        out["reason"] = "set by the profile's float_tail option"
    return out


LOAD_CHECK = """
import sys
import numpy as np
from sift_deploy.backends.base import FileLoader
from sift_deploy.backends.litert.runner import LiteRTRunner
path, layout, shape = sys.argv[1], sys.argv[2], tuple(int(v) for v in sys.argv[3].split(","))
with LiteRTRunner(FileLoader(path), threads=1, details={"layout": layout}) as runner:
    runner.infer(np.zeros((1, *shape), np.float32))
"""


def _check_loads(path: Path, layout: str, input_shape: tuple[int, ...]) -> None:
    """Activate our runner on a full-integer graph and infer once, in a child process. On one trained
    reference LiteRT 2.3's XNNPACK delegate aborted in allocate_tensors ("double free or corruption") on the
    full-integer graph, killing the process; the graph with the float tail, and the same graph without
    XNNPACK, ran. A child process turns that abort into a refusal."""
    import subprocess
    import sys

    command = [sys.executable, "-c", LOAD_CHECK, str(path), layout, ",".join(map(str, input_shape))]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or "").splitlines() if line.strip() and not line.startswith("INFO:")]
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        raise SiftError(f"LiteRT cannot run the full-integer int8 graph of this edge ({how}"
                        f"{': ' + lines[-1][:200] if lines else ''}); keep the funnel's tail in float "
                        "(float_tail = \"auto\" or true in the profile's [backend_options])")


def _check_request(request: ExportRequest) -> str:
    if request.precision not in SUPPORTED_PRECISIONS:
        raise SiftError(f"the litert backend exports {', '.join(SUPPORTED_PRECISIONS)}, not {request.precision!r}")
    layout = str(request.options.get("layout", "NCHW")).upper()
    if layout not in LAYOUTS:
        raise SiftError(f"layout {request.options.get('layout')!r} is not supported by the litert backend; "
                        f"use {' or '.join(LAYOUTS)}")
    _batch_variants(request)
    if request.options.get("float_tail", "auto") not in ("auto", True, False):
        raise SiftError(f"float_tail must be \"auto\", true or false; got {request.options.get('float_tail')!r}")
    if request.precision == "int8":
        if request.calib_method not in OBSERVERS:
            raise SiftError(f"unknown calibration method {request.calib_method!r}; use {', '.join(OBSERVERS)}")
        calib = request.calibration
        if calib is None or calib.ndim != 4 or tuple(calib.shape[1:]) != tuple(request.input_shape) or len(calib) == 0:
            shape = None if calib is None else tuple(calib.shape)
            raise SiftError(f"int8 export needs calibration images of shape (N, {', '.join(map(str, request.input_shape))}); "
                            f"got {shape}")
    return layout


def export(request: ExportRequest) -> ExportResult:
    layout = _check_request(request)
    litert_torch = _import_litert_torch()
    import torch

    edge = request.edge.eval()
    module = litert_torch.to_channel_last_io(edge, args=[0], outputs=[0]) if layout == "NHWC" else edge
    c, h, w = request.input_shape
    sample = torch.zeros(1, h, w, c) if layout == "NHWC" else torch.zeros(1, c, h, w)
    name = edge_file_name(request.precision)
    path = Path(request.out_dir) / name
    details: dict = {
        "converter": "litert-torch",
        "versions": _versions(),
        "precision": request.precision,
        "layout": layout,
        "batch": {"exported": 1, "handling": BATCH_HANDLING},
    }

    variants = _batch_variants(request)
    convert_at = None  # batch -> converted model, for the batch-N variants

    with _quiet_progress(), torch.no_grad():
        if request.precision == "fp32":
            converted = litert_torch.convert(module, (sample,))
            convert_at = lambda s: litert_torch.convert(module, (s,))  # noqa: E731
        elif request.precision == "fp16":
            from litert_torch.generative.quantize.quant_recipes import full_fp16_recipe

            converted = litert_torch.convert(module, (sample,), quant_config=full_fp16_recipe())
            convert_at = lambda s: litert_torch.convert(module, (s,), quant_config=full_fp16_recipe())  # noqa: E731
            details["quantization"] = {"scheme": "fp16 weights (weight-only float casting, dequantized to fp32 "
                                                 "at load); fp32 activations and arithmetic"}
        else:
            from litert_torch.quantize.quant_config import QuantConfig

            calibration = request.calibration
            if layout == "NHWC":
                calibration = calibration.transpose(0, 2, 3, 1)
            tail = _float_tail(request, edge)
            floating = tail["modules"] if tail["used"] or tail["mode"] == "int8_layers" else []
            prefixes = tuple(("wrapped." + m) if layout == "NHWC" else m for m in floating)
            quantizer = _sharing_quantizer(request.calib_method, prefixes)
            graph, calib_batch = _calibrated_graph(module, calibration, quantizer, request.seed)
            try:
                converted = litert_torch.convert(graph, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            except Exception as exc:  # litert-torch raises torch's own errors from deep inside the lowering
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise SiftError(f"litert-torch cannot convert this int8 graph ({type(exc).__name__}: {first}); keep "
                                f"more of the edge in float (fp32 modules: {', '.join(floating) or 'none'})") from exc
            convert_at = lambda s: litert_torch.convert(graph, (s,), quant_config=QuantConfig(pt2e_quantizer=quantizer))  # noqa: E731
            details["quantization"] = {
                "scheme": "PT2E static full-integer int8 (litert-torch PT2EQuantizer + shared-edge patch)",
                "weights": "int8 per-channel symmetric [-127, 127] (PerChannelMinMaxObserver); biases int32",
                "activations": "int8 per-tensor affine; sigmoid outputs fixed at scale 1/256, zero-point -128",
                "activation_observer": OBSERVERS[request.calib_method],
                "activation_eps": ACTIVATION_EPS,
                "calib_method": request.calib_method,
                "calib_method_note": OBSERVER_NOTES[request.calib_method],
                "calibration_images": int(len(calibration)),
                "calibration_batch": calib_batch,
                "shared_input_edges": quantizer.shared_edges,
                "shared_amax": quantizer.shared_amax,
                "completed_annotations": quantizer.completed,
                "float_tail": {**tail, "float_nodes": quantizer.float_nodes},
                "seed": request.seed,
            }
            if tail["used"]:
                details["quantization"]["scheme"] = ("PT2E static int8 with an fp32 tail (litert-torch PT2EQuantizer "
                                                     "+ shared-edge patch): int8 input, float32 output")
        converted.export(str(path))
        files = {"edge": name}
        written = {}
        for n in variants:
            variant = edge_file_name(request.precision, n)
            try:
                convert_at(sample.expand(n, *sample.shape[1:]).contiguous()).export(str(Path(request.out_dir) / variant))
            except Exception as exc:  # noqa: BLE001 - a model that cannot convert at batch N keeps the batch-1 path
                details["batch"].setdefault("variant_errors", {})[str(n)] = str(exc).splitlines()[0][:300]
                continue
            files[f"edge_b{n}"] = variant
            written[str(n)] = variant
        details["batch"]["variants"] = written

    details.update(_inspect(path))
    details["file_bytes"] = path.stat().st_size
    if request.precision == "int8":
        tail = details["quantization"]["float_tail"]
        if not tail["used"] and request.options.get("load_check", True):
            _check_loads(path, layout, request.input_shape)
        first_float = tail["mode"] == "int8_layers" and next(iter(dict(edge.named_children()))) in tail["modules"]
        if tail["mode"] == "int8_layers" and tail["int8_layers"] and details.get("int8_compute_ops") == 0:
            raise SiftError(f"litert-torch left every op in float although {', '.join(tail['int8_layers'])} should be "
                            "int8 (seen when the first module is float); keep the first module int8")
        expected = {"input": "float32" if first_float else "int8", "output": "float32" if tail["used"] else "int8"}
        for role, dtype in expected.items():
            if details[role]["dtype"] != dtype:
                raise SiftError(f"the int8 export has a {details[role]['dtype']} {role} tensor, not {dtype}; "
                                "the model has an op the quantizer leaves in float")
    for n, variant in details["batch"]["variants"].items():
        info = _inspect(Path(request.out_dir) / variant)
        if info["input"]["shape"][0] != int(n) or info["input"]["quantization"] != details["input"]["quantization"]:
            raise SiftError(f"the batch-{n} variant {variant} does not match the batch-1 graph's input "
                            f"({info['input']} vs {details['input']})")
    return ExportResult(files=files, details=details,
                        io={role: _artifact_tensor(details[role]) for role in ("input", "output")})
