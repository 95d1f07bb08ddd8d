"""Edge module -> ONNX that the Jetson's TensorRT parses (+ INT8 Q/DQ and calibration cache) -> engine.

- ONNX: the legacy TorchScript exporter (`dynamo=False`) at `options["opset"]` (default 17, the
  highest TensorRT 8.5 / 8.6 = JetPack 5.1 / 6.0 parse; the dynamo exporter cannot go below 18),
  BatchNorm folded, dynamic batch axis, the faithful graph (`options["rewrite"]=True` for the
  ORT-oriented export form).
- int8, explicit quantization: symmetric int8 Q/DQ (zero-point 0), per-channel weights on axis 0,
  per-tensor activations, standard ONNX ops only, on the inputs/outputs of every Conv except those
  the parity guard keeps float (the most sensitive convs, until z's cosine to the float z on the
  calibration images is >= 0.999: on the reference model the funnel's last conv, whose output is
  the sparse heavy-tailed z, drops it to ~0.93 alone); checked by `lint.py`. `options["int8_layers"]`
  (Conv node names, see `quantizable_layers`) quantizes exactly those convs instead, with no guard.
  Ranges: TensorRT semantics (amax of |x|) by `calib_method`:
  minmax, percentile (99.999th) or entropy (TensorRT's KL search over 2048 bins).
- The same ranges, for every activation tensor of the fp32 ONNX, go into `edge.calib.cache` in the
  exact text format of `options["trt_version"]` (default 8.5.2): the implicit-calibration route
  (`trtexec --int8 --calib=`) that JetPack 5's TensorRT also supports.
- Engine: built here into `edge.plan` when `import tensorrt` works and an NVIDIA GPU is visible;
  otherwise `build_engine.sh` holds the exact `trtexec` command to run on the device, also in
  `details["trtexec"]`.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

import numpy as np

from ...errors import SiftError
from ..base import CALIB_METHODS, PRECISIONS, ExportRequest, ExportResult
from ..base import BytesLoader
from ..onnx_common import INPUT_NAME, export_onnx, float_parity, onnx_io, parity_guard, quiet
from ..onnxruntime.runner import runner_for
from . import calib_cache
from .lint import lint, max_opset_for
from .runner import ENGINE_FILE, tensorrt_available

DEFAULT_OPSET = 17
DEFAULT_TRT_VERSION = "8.5.2"  # JetPack 5.1.x
DEFAULT_MAX_BATCH = 32
CALIBRATION_BATCH = 32
# Parity guard target on the calibration images. Stricter than the x86 backend's 0.995: symmetric
# per-tensor int8 on every conv loses more, and at 0.995 the reference model's top-1 agreement
# through the float cloud fell to 98.9% on the 10k test images (the profiles ask >= 99%).
TRT_GUARD_MIN_COSINE = 0.999
AMAX_FLOOR = 1e-8  # amax of a tensor that is 0 on every calibration image (scales must be positive)
ONNX_FILE = "edge.onnx"
QDQ_FILE = "edge.int8.qdq.onnx"
CACHE_FILE = "edge.calib.cache"
SCRIPT_FILE = "build_engine.sh"


# ---------------------------------------------------------------------------------------------
# activation ranges, TensorRT style

def activation_tensors(model) -> list[str]:
    """The graph input and every float node output, in graph order (TensorRT's tensor names)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    constant = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in constant]
    for node in model.graph.node:
        if node.op_type == "Constant" or all(i in constant for i in node.input if i):
            constant.update(node.output)  # folded by TensorRT: not an activation
            continue
        names += [o for o in node.output if o and types.get(o) == onnx.TensorProto.FLOAT]
    return list(dict.fromkeys(names))


def collect_amax(model_path: Path, data: np.ndarray, method: str, bins: int = calib_cache.HIST_BINS) -> dict[str, float]:
    """amax (|x| range) of every activation tensor over `data`: pass 1 max|x|, pass 2 histograms."""
    import onnx

    model = onnx.load(str(model_path))
    names = activation_tensors(model)
    graph_outputs = {o.name for o in model.graph.output}
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    for name in names:
        if name not in graph_outputs and name != INPUT_NAME and name in inferred:
            model.graph.output.append(inferred[name])
    batches = [np.ascontiguousarray(data[i:i + CALIBRATION_BATCH], dtype=np.float32) for i in range(0, len(data), CALIBRATION_BATCH)]
    floor = AMAX_FLOOR  # a tensor that is 0 on every calibration image still needs a positive scale
    peak = {n: 0.0 for n in names}
    hists = {n: np.zeros(bins, np.int64) for n in names}
    with runner_for(BytesLoader(model.SerializeToString(), "calibration graph"), optimize=False) as runner:
        def run(batch):
            return {INPUT_NAME: batch, **runner.infer_all(batch)}

        for batch in batches:
            for name, value in run(batch).items():
                if name in peak and value.size:
                    peak[name] = max(peak[name], float(np.abs(value).max()))
        if method == "minmax":
            return {n: max(v, floor) for n, v in peak.items()}
        for batch in batches:
            for name, value in run(batch).items():
                if name in hists and peak[name] > 0:
                    hists[name] += np.histogram(np.abs(value), bins=bins, range=(0.0, peak[name]))[0]
    return {n: max(calib_cache.amax_from_histogram(hists[n], np.linspace(0.0, peak[n], bins + 1), method)
                   if peak[n] > 0 else 0.0, floor) for n in names}


def quantize_qdq(src: Path, dst: Path, amax: dict[str, float], work: Path, op_types: list[str],
                 exclude: list[str] = ()) -> None:
    """Explicit Q/DQ in TensorRT's dialect, with the given ranges, via ORT's QDQ quantizer."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData, save_tensors_data

    ranges = TensorsData(CalibrationMethod.MinMax, {
        name: TensorData(lowest=np.array(-max(v, AMAX_FLOOR), np.float32), highest=np.array(max(v, AMAX_FLOOR), np.float32))
        for name, v in amax.items()})
    cache = work / "trt_ranges.json"
    save_tensors_data(ranges, cache)
    import warnings

    with quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(str(src), str(dst), None, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=str(cache),
                        op_types_to_quantize=op_types, nodes_to_exclude=list(exclude),
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True,
                                       "QuantizeBias": False, "AddQDQPairToWeight": True,
                                       # NVIDIA's explicit-quantization guidance: Q/DQ on the inputs of the
                                       # int8 ops only; a conv's output is quantized where the next op
                                       # reads int8 (as that op's input), never for Sigmoid / Add / Mul.
                                       "OpTypesToExcludeOutputQuantization": list(op_types)})
    onnx.checker.check_model(onnx.load(str(dst)))


# ---------------------------------------------------------------------------------------------
# engine

def trtexec_command(onnx_file: str, precision: str, input_shape: tuple[int, ...], max_batch: int,
                    calib_file: str | None = None, engine_file: str = ENGINE_FILE) -> list[str]:
    shape = "x".join(str(d) for d in input_shape)
    cmd = ["trtexec", f"--onnx={onnx_file}"]
    if precision == "int8":
        cmd += ["--int8", "--fp16"]  # fp16 for the layers left unquantized
        if calib_file:
            cmd.append(f"--calib={calib_file}")
    elif precision == "fp16":
        cmd.append("--fp16")
    cmd += [f"--minShapes={INPUT_NAME}:1x{shape}", f"--optShapes={INPUT_NAME}:1x{shape}",
            f"--maxShapes={INPUT_NAME}:{max_batch}x{shape}", f"--saveEngine={engine_file}"]
    return cmd


def build_script(command: list[str], implicit: list[str] | None, trt_version: str) -> str:
    lines = [
        "#!/usr/bin/env bash",
        f"# Builds {ENGINE_FILE} from this bundle's ONNX on the Jetson (engines are tied to the TensorRT",
        f"# version and GPU that build them). Exported for TensorRT {trt_version}.",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        'TRTEXEC="${TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}"',
        '"$TRTEXEC" ' + " ".join(shlex.quote(c) for c in command[1:]),
    ]
    if implicit:
        lines += ["# Implicit-calibration alternative (fp32 ONNX + TensorRT calibration cache):",
                  '# "$TRTEXEC" ' + " ".join(shlex.quote(c) for c in implicit[1:])]
    return "\n".join(lines) + "\n"


def build_engine(onnx_path: Path, plan_path: Path, precision: str, input_shape: tuple[int, ...], max_batch: int,
                 workspace_mib: int = 256) -> dict:
    """Build and save a TensorRT engine with the Python API (needs tensorrt + an NVIDIA GPU)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SiftError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, (1, *input_shape), (1, *input_shape), (max_batch, *input_shape))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise SiftError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path.name}")
    plan_path.write_bytes(bytes(serialized))
    return {"tensorrt": trt.__version__, "built_at_export": True, "bytes": plan_path.stat().st_size}


# ---------------------------------------------------------------------------------------------

def export(request: ExportRequest) -> ExportResult:
    if request.precision not in PRECISIONS:
        raise SiftError(f"precision {request.precision!r} is not one of {', '.join(PRECISIONS)}")
    opts = request.options
    trt_version = str(opts.get("trt_version", DEFAULT_TRT_VERSION))
    calib_cache.parse_trt_version(trt_version)
    opset = int(opts.get("opset", DEFAULT_OPSET))
    limit = max_opset_for(trt_version)
    if opset > limit:
        raise SiftError(f"opset {opset} is above {limit}, the highest TensorRT {trt_version} parses; set opset <= {limit} in the profile")
    if opset < 13:
        raise SiftError(f"opset {opset} is too old for per-channel Q/DQ; use 13..{limit}")
    max_batch = int(opts.get("max_batch", DEFAULT_MAX_BATCH))
    precision = request.precision
    cal = None if request.calibration is None else np.ascontiguousarray(request.calibration, dtype=np.float32)
    if precision == "int8":
        if request.calib_method not in CALIB_METHODS:
            raise SiftError(f"calibration method {request.calib_method!r} is not one of {', '.join(CALIB_METHODS)}")
        if cal is None or cal.ndim != 4 or tuple(cal.shape[1:]) != tuple(request.input_shape):
            raise SiftError(f"int8 needs calibration images shaped (N, {', '.join(map(str, request.input_shape))})")

    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / ONNX_FILE
    details = export_onnx(request.edge, request.input_shape, onnx_path, opset,
                          rewrite=bool(opts.get("rewrite", False)), check_inputs=cal)
    details.update(precision=precision, trt_version=trt_version, max_opset=limit, max_batch=max_batch,
                   onnx=ONNX_FILE, engine_file=ENGINE_FILE)
    files = {"onnx_fp32": ONNX_FILE}
    engine_input = ONNX_FILE
    implicit = None
    notes: list[str] = []

    if precision == "int8":
        import onnxruntime as ort

        import onnx

        op_types = list(opts.get("int8_op_types", ["Conv"]))
        fp32_model = onnx.load(str(onnx_path))
        convs = [n.name for n in fp32_model.graph.node if n.op_type == "Conv"]
        with tempfile.TemporaryDirectory(prefix="sift-trt-") as tmp:
            amax = collect_amax(onnx_path, cal, request.calib_method)

            def write(names, path):
                quantize_qdq(onnx_path, path, amax, Path(tmp), op_types, exclude=[c for c in convs if c not in names])

            min_cosine = opts.get("int8_min_cosine", TRT_GUARD_MIN_COSINE)
            if opts.get("int8_layers") is not None:
                unknown = [n for n in opts["int8_layers"] if n not in convs]
                if unknown:
                    raise SiftError(f"int8_layers names convs the graph does not have: {', '.join(unknown)}; "
                                    f"quantizable layers: {', '.join(convs)}")
                write(list(opts["int8_layers"]), out_dir / QDQ_FILE)
                guard = {"skipped": "int8_layers set by the caller", "int8_layers": list(opts["int8_layers"])}
            elif min_cosine is None:
                write(convs, out_dir / QDQ_FILE)
                guard = None
            else:
                _, guard = parity_guard(onnx_path, out_dir / QDQ_FILE, convs, write, cal, float(min_cosine), Path(tmp))
                if guard.get("warning"):
                    notes.append(guard["warning"])
        problems = lint(out_dir / QDQ_FILE, trt_version)
        if problems:
            raise SiftError("internal error: the Q/DQ model breaks TensorRT's rules: " + "; ".join(map(str, problems[:5])))
        calib_cache.write_cache(out_dir / CACHE_FILE, amax, trt_version)
        engine_input = QDQ_FILE
        files.update(onnx=QDQ_FILE, calibration_cache=CACHE_FILE)
        details["onnx"] = QDQ_FILE
        details["quantization"] = {
            "mode": "explicit Q/DQ", "onnxruntime": ort.__version__,
            "weights": "int8 symmetric, per-channel axis 0", "activations": "int8 symmetric (zero-point 0), per-tensor",
            "op_types": op_types, "lint": "passed (lint.py)",
            **({"parity_guard": guard} if guard is not None else {}),
            "calibration": {"method": request.calib_method, "samples": int(len(cal)), "range": "amax of |x|",
                            **({"bins": calib_cache.HIST_BINS, "quantized_bins": calib_cache.QUANT_BINS} if request.calib_method == "entropy" else {}),
                            **({"bins": calib_cache.HIST_BINS, "percentile": calib_cache.PERCENTILE} if request.calib_method == "percentile" else {})},
            "calibration_cache": {"file": CACHE_FILE, "header": calib_cache.header(trt_version), "tensors": len(amax),
                                  "for": f"implicit INT8 from {ONNX_FILE} (trtexec --calib); header says EntropyCalibration2 "
                                         "because that is trtexec's calibrator, whatever method made the ranges"},
            "calibration_parity_onnxruntime": float_parity(request.edge, out_dir / QDQ_FILE, cal[: min(len(cal), 128)]),
        }
        implicit = trtexec_command(ONNX_FILE, "int8", request.input_shape, max_batch, calib_file=CACHE_FILE)
        details["trtexec_implicit"] = " ".join(implicit)
    else:
        files["onnx"] = ONNX_FILE
        if precision == "fp16":
            notes.append("fp16 is chosen at engine build (trtexec --fp16); the ONNX Runtime stand-in runs this fp32 ONNX "
                         "in fp32, so fp16 numerics show only on the device")

    command = trtexec_command(engine_input, precision, request.input_shape, max_batch)
    details["trtexec"] = " ".join(command)
    (out_dir / SCRIPT_FILE).write_text(build_script(command, implicit, trt_version))
    (out_dir / SCRIPT_FILE).chmod(0o755)
    files["build_script"] = SCRIPT_FILE

    available, why = tensorrt_available()
    if available and opts.get("build_engine", True):
        details["engine"] = build_engine(out_dir / engine_input, out_dir / ENGINE_FILE, precision,
                                         request.input_shape, max_batch)
        files["edge"] = ENGINE_FILE
    else:
        details["engine"] = {"built_at_export": False, "why": why, "build_on_device": f"./{SCRIPT_FILE}"}
        files["edge"] = engine_input
        notes.append(f"TensorRT engine not built here ({why}); run {SCRIPT_FILE} on the Jetson")
    details["notes"] = notes
    # an engine built from the ONNX takes and returns what the ONNX's graph does
    return ExportResult(files=files, details=details, io=onnx_io(out_dir / engine_input))


def rule_int8_layers(request: ExportRequest, details: dict) -> list[str]:
    """Every conv but those the parity guard kept float in a default export's details."""
    kept = {row["node"] for row in (details["quantization"].get("parity_guard") or {}).get("kept_float", [])}
    return [name for name in quantizable_layers(request) if name not in kept]


def quantizable_layers(request: ExportRequest) -> list[str]:
    """The Conv node names `options["int8_layers"]` may list, in graph order."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="sift-trt-layers-") as tmp:
        path = Path(tmp) / ONNX_FILE
        export_onnx(request.edge, request.input_shape, path, int(request.options.get("opset", DEFAULT_OPSET)),
                    rewrite=bool(request.options.get("rewrite", False)), check_inputs=request.calibration)
        return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
