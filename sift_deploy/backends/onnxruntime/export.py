"""Edge module -> single-file ONNX for ONNX Runtime on CPU: fp32, fp16 (fp32 I/O) or int8 QDQ.

The graph is exported with the legacy TorchScript exporter (`dynamo=False`: it folds BatchNorm and
lowers to opset 17, which the dynamo exporter cannot), with a dynamic batch axis, and with the
attention blocks in their export form (`rewrite.py`; same function, ~1.6x faster in ORT). Pass
`options={"rewrite": False}` for the faithful graph.

int8 is static QDQ: int8 symmetric per-channel weights (axis 0), uint8 asymmetric per-tensor
activations, ranges from the calibration set. *What* is quantized was chosen by measurement
(benchmarks/ort_int8_choice.py): at batch 1 the edge is ~1.5 M MACs, so Q/DQ nodes cost more than
int8 arithmetic saves on every small layer, and ORT's QLinearConv is several times slower than its
fp32 NCHWc kernel on the 1-input-channel stem. Only convolutions with >= `int8_min_in_channels`
input channels and >= `int8_min_macs` MACs per image are quantized (the folded attention-gate
convs and the funnel's 64 -> 16 squeeze); everything else stays float. A parity guard then keeps
any of those convs float whose quantization drops z's cosine to the float z below 0.995 on the
calibration images (`options["int8_min_cosine"]`, None to disable). `options["int8_nodes"] =
"all"` gives the plain quantize-everything model for comparison, and `options["int8_layers"] =
[Conv node names]` quantizes exactly those convs, with no guard (the precision search uses it;
`quantizable_layers` lists the names).

Calibration: `minmax` (ORT MinMax), `percentile` (99.999th, 2048 bins) and `entropy`, a real KL
search over 2048-bin histograms (ORT's own Entropy default has 128 bins for 128 levels, which
is MinMax): ranges come from `create_calibrator(..., Entropy, num_bins=2048)` and reach
`quantize_static` through `calibration_cache_path`.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from ...errors import SiftError
from ..base import CALIB_METHODS, PRECISIONS, ExportRequest, ExportResult
from ..onnx_common import DEFAULT_OPSET, INPUT_NAME, export_onnx, float_parity, onnx_io, parity_guard, quiet

INT8_MIN_MACS = 50_000
INT8_MIN_IN_CHANNELS = 16
CALIBRATION_BATCH = 64
ENTROPY_BINS = 2048
ENTROPY_QUANTIZED_BINS = 128
PERCENTILE = 99.999
GUARD_MIN_COSINE = 0.995  # parity guard on the calibration images (profiles ask >= 0.99 on held-out ones)
FILE_NAMES = {"fp32": "edge.fp32.onnx", "fp16": "edge.fp16.onnx", "int8": "edge.int8.onnx"}


# ---------------------------------------------------------------------------------------------
# calibration

class _Reader:
    """CalibrationDataReader over float32 (N, C, H, W) batches."""

    def __init__(self, data: np.ndarray, batch: int = CALIBRATION_BATCH):
        self.batches = [np.ascontiguousarray(data[i:i + batch], dtype=np.float32) for i in range(0, len(data), batch)]
        self.pos = 0

    def get_next(self):
        if self.pos >= len(self.batches):
            return None
        self.pos += 1
        return {INPUT_NAME: self.batches[self.pos - 1]}

    def __len__(self):
        return len(self.batches)


def calibrate(model_path: Path, data: np.ndarray, method: str, tensors: set[str] | None, work: Path,
              symmetric: bool = False):
    """Activation ranges (ORT `TensorsData`) for `tensors` (None: every float tensor) by `method`."""
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    ort_method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                  "percentile": CalibrationMethod.Percentile}[method]
    extra: dict = {"symmetric": symmetric}
    if method == "entropy":
        extra.update(num_bins=ENTROPY_BINS, num_quantized_bins=ENTROPY_QUANTIZED_BINS)
    elif method == "percentile":
        extra.update(num_bins=ENTROPY_BINS, percentile=PERCENTILE)
    calibrator = create_calibrator(Path(model_path), None, augmented_model_path=str(work / "augmented.onnx"),
                                   calibrate_method=ort_method, extra_options=extra)
    if tensors is not None:
        # Histogram methods cost ~1 s per tensor (ORT's KL search is a Python loop): the augmented
        # model outputs every tensor, but histograms are made only for `tensors_to_calibrate`.
        if getattr(calibrator, "tensors_to_calibrate", None) is not None:
            calibrator.tensors_to_calibrate = set(tensors) & set(calibrator.tensors_to_calibrate)
    reader = _Reader(data)
    assert isinstance(reader, CalibrationDataReader)
    with quiet():
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
    return ranges, ort_method


# ---------------------------------------------------------------------------------------------
# choosing what to quantize

def conv_costs(model) -> list[dict]:
    """Per Conv node: name, input channels, kernel, MACs per image (needs inferred shapes)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    shapes = {}
    for vi in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    rows = []
    for node in model.graph.node:
        if node.op_type != "Conv" or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        out = shapes.get(node.output[0])
        spatial = int(np.prod(out[2:])) if out and all(d for d in out[2:]) else 0
        macs = int(w.shape[0] * w.shape[1] * np.prod(w.shape[2:]) * spatial)
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        rows.append({"node": node.name, "in_channels": int(w.shape[1] * group), "out_channels": int(w.shape[0]),
                     "kernel": list(w.shape[2:]), "macs": macs, "input": node.input[0], "output": node.output[0]})
    return rows


def select_int8_nodes(model, min_macs: int = INT8_MIN_MACS, min_in_channels: int = INT8_MIN_IN_CHANNELS) -> tuple[list[dict], list[dict]]:
    """(quantized, kept float) convs by the measured rule."""
    rows = conv_costs(model)
    chosen = [r for r in rows if r["macs"] >= min_macs and r["in_channels"] >= min_in_channels]
    kept = [r for r in rows if r not in chosen]
    return chosen, kept


def quantize_onnx(src: Path, dst: Path, calibration: np.ndarray, method: str, work: Path, *,
                  nodes: str | list[str] = "selected", symmetric_activations: bool = False,
                  min_macs: int = INT8_MIN_MACS, min_in_channels: int = INT8_MIN_IN_CHANNELS,
                  min_cosine: float | None = GUARD_MIN_COSINE) -> dict:
    """Static QDQ quantization of the fp32 ONNX `src` into `dst`; return the details.

    `nodes`: "selected" (the measured rule), "all" (quantize_static's default: every op it can),
    or a list of Conv node names. With `min_cosine`, the parity guard drops the most sensitive
    convs until the model's z keeps that cosine to the float z on the calibration images.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data

    model = onnx.load(str(src))
    rows = conv_costs(model)
    if nodes == "all":
        chosen_rows, kept_rows, tensors = rows, [], None
    else:
        if nodes == "selected":
            chosen_rows, kept_rows = select_int8_nodes(model, min_macs, min_in_channels)
        else:
            chosen_rows = [r for r in rows if r["node"] in set(nodes)]
            kept_rows = [r for r in rows if r not in chosen_rows]
        if not chosen_rows:
            raise SiftError("no convolution is large enough to quantize; export fp32 instead of int8")
        tensors = {r["input"] for r in chosen_rows} | {r["output"] for r in chosen_rows}
    t0 = time.perf_counter()
    ranges, ort_method = calibrate(src, calibration, method, tensors, work, symmetric=symmetric_activations)
    calib_s = time.perf_counter() - t0
    cache = work / "ranges.json"
    save_tensors_data(ranges, cache)

    def write(quantized: list[str] | None, out: Path) -> None:
        kwargs = dict(quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                      activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                      calibrate_method=ort_method, calibration_cache_path=str(cache),
                      extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True})
        if quantized is not None:
            kwargs["op_types_to_quantize"] = ["Conv"]
            kwargs["nodes_to_exclude"] = [r["node"] for r in rows if r["node"] not in quantized]
        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(src), str(out), None, **kwargs)

    guard = None
    if nodes == "all":
        write(None, dst)
    else:
        names = [r["node"] for r in chosen_rows]
        if min_cosine is None:
            write(names, dst)
        else:
            names, guard = parity_guard(src, dst, names, write, calibration, min_cosine, work)
            chosen_rows = [r for r in rows if r["node"] in names]
            kept_rows = [r for r in rows if r["node"] not in names]
    qmodel = onnx.load(str(dst))
    onnx.checker.check_model(qmodel)
    details = {
        "format": "QDQ",
        "weights": "int8, symmetric, per-channel (axis 0)",
        "activations": ("int8 symmetric" if symmetric_activations else "uint8 asymmetric") + ", per-tensor",
        "nodes": "all" if nodes == "all" else "selected",
        "chosen_by": "benchmarks/ort_int8_choice.py: p50 at batch 1, 1 thread, of fp32 / plain / all-convs / chosen",
        "rule": None if nodes == "all" else {"op_type": "Conv", "min_macs_per_image": min_macs,
                                               "min_in_channels": min_in_channels},
        "quantized_convs": [{k: r[k] for k in ("node", "in_channels", "out_channels", "kernel", "macs")} for r in chosen_rows],
        "float_convs": [{k: r[k] for k in ("node", "in_channels", "macs")} for r in kept_rows],
        "calibration": {"method": method, "samples": int(len(calibration)), "seconds": round(calib_s, 2),
                        "tensors": "all" if tensors is None else sorted(tensors),
                        **({"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS} if method == "entropy" else {}),
                        **({"num_bins": ENTROPY_BINS, "percentile": PERCENTILE} if method == "percentile" else {}),
                        "ranges": {name: [_scalar(ranges[name].range_value[0]), _scalar(ranges[name].range_value[1])]
                                   for name in sorted(tensors) if name in ranges} if tensors is not None else "all tensors"},
        "op_counts": _op_counts(qmodel),
    }
    if guard is not None:
        details["parity_guard"] = guard
    return details


def _scalar(value) -> float:
    return float(np.asarray(value, dtype=np.float64).reshape(-1)[0])


def _op_counts(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


# ---------------------------------------------------------------------------------------------
# measurement at export time

def measure_p50(paths: dict[str, Path], threads: int = 1, rounds: int = 7, runs: int = 60) -> dict:
    """Interleaved p50 (us) of each ONNX file at batch 1 through our ORT runner (bench's timing loop);
    median over rounds."""
    from ...bench.timing import start_runner, time_calls
    from ..base import FileLoader
    from .runner import runner_for

    inputs = [np.zeros((1,) + tuple(_input_shape(next(iter(paths.values())))), np.float32)]
    runners = {k: runner_for(FileLoader(p), threads) for k, p in paths.items()}
    per_round: dict[str, list[float]] = {k: [] for k in runners}
    try:
        for runner in runners.values():
            start_runner(runner, inputs, warmup=20)
        for _ in range(rounds):
            for k, runner in runners.items():
                per_round[k].append(float(np.median(time_calls(runner.infer, inputs, runs).wall_ns)) / 1000.0)
    finally:
        for runner in runners.values():
            runner.deactivate()
    return {k: round(float(np.median(v)), 1) for k, v in per_round.items()}


def _input_shape(path: Path) -> list[int]:
    import onnx

    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value for d in dims[1:]]


# ---------------------------------------------------------------------------------------------

def _validate(request: ExportRequest) -> None:
    if request.precision not in PRECISIONS:
        raise SiftError(f"precision {request.precision!r} is not one of {', '.join(PRECISIONS)}")
    if request.precision == "int8":
        if request.calib_method not in CALIB_METHODS:
            raise SiftError(f"calibration method {request.calib_method!r} is not one of {', '.join(CALIB_METHODS)}")
        cal = request.calibration
        if cal is None or cal.ndim != 4 or tuple(cal.shape[1:]) != tuple(request.input_shape):
            raise SiftError(f"int8 needs calibration images shaped (N, {', '.join(map(str, request.input_shape))}); "
                            f"got {None if cal is None else cal.shape}")
    opset = int(request.options.get("opset", DEFAULT_OPSET))
    if not 13 <= opset <= 21:
        raise SiftError(f"opset {opset} is not supported by this backend; use 13..21 (17 is the default)")


def export(request: ExportRequest) -> ExportResult:
    import onnx
    import onnxruntime as ort

    _validate(request)
    out_dir = Path(request.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = request.options
    opset = int(opts.get("opset", DEFAULT_OPSET))
    threads = int(opts.get("threads", 1))
    precision = request.precision
    target = out_dir / FILE_NAMES[precision]
    cal = None if request.calibration is None else np.ascontiguousarray(request.calibration, dtype=np.float32)

    with tempfile.TemporaryDirectory(prefix="sift-ort-") as tmp:
        work = Path(tmp)
        fp32_path = work / "edge.fp32.onnx"
        details = export_onnx(request.edge, request.input_shape, fp32_path, opset,
                              rewrite=bool(opts.get("rewrite", True)), check_inputs=cal)
        details.update(onnxruntime=ort.__version__, precision=precision, file=target.name,
                       session={"provider": "CPUExecutionProvider", "graph_optimization_level": "ORT_ENABLE_ALL",
                                "intra_op_num_threads": threads, "execution_mode": "sequential"})
        notes: list[str] = []
        if precision == "fp32":
            onnx.save(onnx.load(str(fp32_path)), str(target))
        elif precision == "fp16":
            from onnxconverter_common import float16

            half = float16.convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
            onnx.save(half, str(target))
            details["fp16"] = {"converter": "onnxconverter_common.float16", "io": "float32 (keep_io_types)"}
        else:
            nodes = opts.get("int8_nodes", "selected")
            min_cosine = opts.get("int8_min_cosine", GUARD_MIN_COSINE)
            if opts.get("int8_layers") is not None:
                nodes, min_cosine = _known_layers(fp32_path, opts["int8_layers"]), None
            q = quantize_onnx(fp32_path, target, cal, request.calib_method, work, nodes=nodes,
                              min_macs=int(opts.get("int8_min_macs", INT8_MIN_MACS)),
                              min_in_channels=int(opts.get("int8_min_in_channels", INT8_MIN_IN_CHANNELS)),
                              min_cosine=min_cosine)
            if opts.get("int8_layers") is not None:
                q["nodes"] = "int8_layers (chosen by the caller, e.g. the precision search)"
            if q.get("parity_guard", {}).get("warning"):
                notes.append(q["parity_guard"]["warning"])
            if opts.get("measure", True):
                timing = measure_p50({"fp32": fp32_path, "int8": target}, threads=threads)
                q["timing_us"] = {"fp32_p50": timing["fp32"], "int8_p50": timing["int8"],
                                  "int8_over_fp32": round(timing["int8"] / timing["fp32"], 3), "batch": 1,
                                  "threads": threads, "where": f"export host ({platform.machine()}, {platform.processor() or 'cpu'})",
                                  "note": "interleaved quick measurement at export; `sift-deploy bench` is the real benchmark"}
                if timing["int8"] >= timing["fp32"]:
                    notes.append(f"int8 measured {timing['int8']:.0f} us vs fp32 {timing['fp32']:.0f} us at batch 1 on the "
                                 "export host: int8 is not faster here")
            q["calibration_parity"] = float_parity(request.edge, target, cal[: min(len(cal), 128)])
            details["quantization"] = q
        details["size_bytes"] = target.stat().st_size
        if notes:
            details["notes"] = notes
    return ExportResult(files={"edge": target.name}, details=json.loads(json.dumps(details, default=_jsonable)),
                        io=onnx_io(target))


def _known_layers(fp32_path: Path, names) -> list[str]:
    import onnx

    known = [r["node"] for r in conv_costs(onnx.load(str(fp32_path)))]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SiftError(f"int8_layers names convs the graph does not have: {', '.join(unknown)}; "
                        f"quantizable layers: {', '.join(known)}")
    return list(names)


def quantizable_layers(request: ExportRequest) -> list[str]:
    """The Conv node names `options["int8_layers"]` may list, in graph order."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="sift-ort-layers-") as tmp:
        path = Path(tmp) / "edge.fp32.onnx"
        export_onnx(request.edge, request.input_shape, path, int(request.options.get("opset", DEFAULT_OPSET)),
                    rewrite=bool(request.options.get("rewrite", True)), check_inputs=request.calibration)
        return [r["node"] for r in conv_costs(onnx.load(str(path)))]


def rule_int8_layers(request: ExportRequest, details: dict) -> list[str]:
    """The convs the fixed rule (and its parity guard) left int8 in a default export's details."""
    return [row["node"] for row in details["quantization"]["quantized_convs"]]


def _jsonable(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
