"""Run an exported `.tflite` edge with ai-edge-litert (or tflite-runtime): numpy only, no torch.

Takes float32 NCHW normalised images and returns float32 NCHW features z. The runner does what
the file needs around that: NHWC transposes for channels-last exports, and int8 quantize /
dequantize with the scale and zero-point stored in the file's input and output tensors.

The edge file is a static-shape batch-1 graph (see export.py). A bundle may carry batch-N variants
(`details["batch"]["variants"]`, e.g. edge.int8.b32.tflite): a batch of N images, or a multiple of
N, runs through the batch-N graph, one invocation per N images; any other batch runs the batch-1
graph once per image. A file whose input has a dynamic batch axis (shape_signature -1, e.g. from
another converter) is resized to the batch and invoked once.
"""

from __future__ import annotations

import gc
import time
from importlib import metadata

import numpy as np

from ...errors import SiftError
from ..base import Artifacts, Loader, Runner

INSTALL_HINT = "pip install './sift-deploy[rpi]' (ai-edge-litert)"


def _interpreter_class():
    """(Interpreter class, runtime package name): ai-edge-litert first, tflite-runtime as a fallback."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError as exc:
        raise SiftError(f"no TFLite runtime is installed (neither ai_edge_litert nor tflite_runtime imports); "
                        f"{INSTALL_HINT}") from exc


def _quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / np.float32(scale)) + zero_point, info.min, info.max).astype(dtype)


def _dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((q.astype(np.int32) - zero_point).astype(np.float32) * np.float32(scale)).astype(np.float32)


class LiteRTRunner(Runner):
    name = "litert"

    label = "LiteRT (XNNPACK)"

    def __init__(self, loader: Loader, threads: int = 1, details: dict | None = None,
                 variants: dict[int, Loader] | None = None):
        super().__init__(loader, threads, details)
        self.layout = str(self.details.get("layout", "NCHW")).upper()
        self.runtime: str | None = None
        self._interpreter = None
        self.variants = dict(variants or {})  # batch N -> loader of the static batch-N graph
        self._variant_calls: dict[int, object] = {}

    def _load(self, loader: Loader):
        interpreter_class, self.runtime = _interpreter_class()
        try:
            interpreter = interpreter_class(model_content=loader.read_bytes(), num_threads=self.threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise SiftError(f"{self.runtime} cannot load {loader.name} ({exc}); the file may be corrupt") from exc
        return interpreter

    def _activate(self) -> None:
        self._interpreter = self._load(self.loader)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._in_dtype = np.dtype(self._input["dtype"])
        self._out_dtype = np.dtype(self._output["dtype"])
        self._in_scale, self._in_zero = self._input["quantization"]
        self._out_scale, self._out_zero = self._output["quantization"]
        signature = self._input.get("shape_signature", self._input["shape"])
        self._dynamic_batch = int(signature[0]) == -1
        self._batch = int(self._input["shape"][0])
        self._sample_shape = tuple(int(v) for v in self._input["shape"][1:])
        self._variant_calls = {}
        for n, loader in sorted(self.variants.items()):
            interpreter = self._load(loader)
            inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
            if int(inp["shape"][0]) != n or tuple(int(v) for v in inp["shape"][1:]) != self._sample_shape:
                raise SiftError(f"{loader.name} is not a batch-{n} variant of {self.loader.name} "
                                f"(input shape {list(inp['shape'])}); re-export the bundle")
            self._variant_calls[n] = self._caller(interpreter, inp["index"], out["index"])
        self._call1 = self._caller(self._interpreter, self._input["index"], self._output["index"])

    @staticmethod
    def _caller(interpreter, input_index: int, output_index: int):
        set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor

        def call(batch: np.ndarray) -> np.ndarray:
            set_tensor(input_index, batch)
            invoke()
            return get_tensor(output_index)
        return call

    def _to_model(self, x: np.ndarray) -> np.ndarray:
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        if self._in_dtype.kind in "iu":
            return _quantize(x, self._in_scale, self._in_zero, self._in_dtype)
        return np.ascontiguousarray(x, dtype=self._in_dtype)

    def _from_model(self, y: np.ndarray) -> np.ndarray:
        if self._out_dtype.kind in "iu":
            y = _dequantize(y, self._out_scale, self._out_zero)
        else:
            y = y.astype(np.float32, copy=False)
        if self.layout == "NHWC":
            y = y.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(y)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        return self._call1(batch)

    def raw_call(self):
        """set_tensor / invoke / get_tensor of the batch-1 graph, on input already in the file's dtype and layout."""
        return self._call1, self._to_model

    def graph_batch(self, n: int) -> int:
        """The batch of the graph a call with n images runs (n itself for a dynamic-batch file)."""
        if self._dynamic_batch:
            return n
        for size in sorted(self._variant_calls, reverse=True):
            if n % size == 0:
                return size
        return self._batch

    def _infer(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise SiftError(f"the edge takes images of shape (N, C, H, W); got an array of shape {x.shape}")
        q = self._to_model(x)
        if tuple(q.shape[1:]) != self._sample_shape:
            expected = self._sample_shape if self.layout == "NCHW" else (self._sample_shape[2], *self._sample_shape[:2])
            raise SiftError(f"the edge takes images of shape (N, {', '.join(map(str, expected))}); got {x.shape}")
        if self._dynamic_batch and len(q) != self._batch:
            self._interpreter.resize_tensor_input(self._input["index"], [len(q), *self._sample_shape])
            self._interpreter.allocate_tensors()
            self._batch = len(q)
        if len(q) == self._batch:
            return self._from_model(self._call1(q))
        for size, call in sorted(self._variant_calls.items(), reverse=True):
            if len(q) == size:
                return self._from_model(call(q))
            if len(q) % size == 0:
                return self._from_model(np.concatenate([call(q[i:i + size]) for i in range(0, len(q), size)]))
        if len(q) % self._batch:
            raise SiftError(f"this edge file runs batches of {self._batch}; {len(q)} images is not a multiple")
        outs = [self._invoke(q[i:i + self._batch]) for i in range(0, len(q), self._batch)]
        return self._from_model(np.concatenate(outs))

    def profile(self, x: np.ndarray, runs: int = 50, warmup: int = 10, rounds: int = 5) -> dict:
        """Per-node timing: the ai-edge-litert Python package has no op profiler (its benchmark tool
        times whole runs only; the native benchmark_model's --enable_op_profiling is not shipped),
        so node k is timed as the growth of the p50 of the prefix graph ops[0..k] (the file cut
        after node k, its output made the graph output) over ops[0..k-1]. Every prefix runs in its own
        interpreter with this runner's threads (XNNPACK as usual), in `rounds` interleaved rounds of
        runs/rounds calls; the p50s are made monotone (running max) before differencing. The
        runner's own numpy I/O conversions (int8 quantize / dequantize, NHWC transposes) are timed
        as rows of their own."""
        from ..profiling import op_profile
        from ...bench.timing import time_calls

        interpreter_class, runtime = _interpreter_class()
        n = len(x)
        size = max((b for b in self.variants if n % b == 0), default=1)
        loader = self.variants.get(size, self.loader)
        content = loader.read_bytes()
        helper = LiteRTRunner(loader, self.threads, self.details).activate()
        try:
            q = helper._to_model(np.asarray(x, dtype=np.float32))
            if len(q) != helper._batch and not helper._dynamic_batch:
                q = q[: helper._batch]
            y = helper._invoke(q)
            io_rows = []
            if helper._in_dtype.kind in "iu" or helper.layout == "NHWC":
                label = "runner: quantize input" if helper._in_dtype.kind in "iu" else "runner: layout (NHWC)"
                t = time_calls(helper._to_model, [np.asarray(x, dtype=np.float32)], runs).wall_ns
                io_rows.append({"node": label, "op_type": label, "us": float(np.median(t)) / 1e3})
            if helper._out_dtype.kind in "iu" or helper.layout == "NHWC":
                label = "runner: dequantize output" if helper._out_dtype.kind in "iu" else "runner: layout (NHWC)"
                t = time_calls(helper._from_model, [y], runs).wall_ns
                io_rows.append({"node": label + " ", "op_type": label, "us": float(np.median(t)) / 1e3})
        finally:
            helper.deactivate()
        ops, prefixes = _prefix_models(content)
        interpreters = []
        for blob in prefixes:
            interp = interpreter_class(model_content=blob, num_threads=self.threads)
            interp.allocate_tensors()
            index = interp.get_input_details()[0]["index"]
            out = interp.get_output_details()[0]["index"]
            interpreters.append((interp, index, out))

        def caller(interp, index, out):
            def call(v):
                interp.set_tensor(index, v)
                interp.invoke()
                return interp.get_tensor(out)
            return call

        calls = [caller(*i) for i in interpreters]
        for call in calls:
            for _ in range(warmup):
                call(q)
        per_round = max(1, runs // rounds)
        p50s = np.zeros((rounds, len(calls)))
        times = np.empty(per_round, dtype=np.int64)
        clock = time.perf_counter_ns
        gc.collect()  # once: the flatbuffer objects of the prefixes are many; a collect per prefix costs more than the runs
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            for r in range(rounds):
                for k, call in enumerate(calls):
                    for i in range(per_round):
                        t0 = clock()
                        call(q)
                        times[i] = clock() - t0
                    p50s[r, k] = np.median(times) / 1e3
        finally:
            if gc_was_enabled:
                gc.enable()
        p50 = np.maximum.accumulate(np.median(p50s, axis=0))
        rows = [{"node": f"{k}:{op}", "op_type": op, "us": float(p50[k] - (p50[k - 1] if k else 0.0))}
                for k, op in enumerate(ops)]
        calls_per_batch = max(1, len(x) // len(q))
        if calls_per_batch > 1:
            rows = [{**r, "us": r["us"] * calls_per_batch} for r in rows]
        notes = [f"{runtime} has no op profiler in Python: per-node timing of {len(ops)} prefix graphs of {loader.name} "
                 f"(p50 of {rounds} interleaved rounds x {per_round} calls)",
                 "node 0 includes the interpreter's per-invoke overhead; XNNPACK fuses some nodes in the full "
                 "graph, so a cut can cost a node a little more than it does there"]
        if calls_per_batch > 1:
            notes.append(f"the file runs batches of {len(q)}: node times are x{calls_per_batch} for a batch of {len(x)}")
        return op_profile(rows + io_rows, method="per-node timing of prefix graphs (LiteRT has no Python op profiler)",
                          runs=per_round * rounds, batch=len(x), run_us=float(p50[-1]) * calls_per_batch, notes=notes)

    def _deactivate(self) -> None:
        self._interpreter = None
        self._variant_calls = {}

    def versions(self) -> dict[str, str]:
        out = {"numpy": np.__version__}
        for package in ("ai-edge-litert", "tflite-runtime"):
            try:
                out[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        if self.runtime is not None:
            out["runtime"] = self.runtime
        return out


def _prefix_models(content: bytes) -> tuple[list[str], list[bytes]]:
    """(op names, prefix files): the .tflite `content` cut after each of its operators: operators[:k+1],
    with the output of operator k as the only graph output (signatures dropped; they name the old output)."""
    import copy

    try:
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError as exc:
        raise SiftError(f"per-node timing needs ai_edge_litert.tools.flatbuffer_utils ({exc}); {INSTALL_HINT}") from exc
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    graph = model.subgraphs[0]
    operators = list(graph.operators)
    names = [str(flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)) for op in operators]
    out = []
    for k in range(len(operators)):
        cut = copy.copy(model)
        sub = copy.copy(graph)
        sub.operators = operators[: k + 1]
        sub.outputs = [int(operators[k].outputs[0])]
        cut.subgraphs = [sub] + list(model.subgraphs[1:])
        cut.signatureDefs = []
        out.append(bytes(flatbuffer_utils.convert_object_to_bytearray(cut)))
    return names, out


def available() -> tuple[bool, str]:
    try:
        _interpreter_class()
    except SiftError as exc:
        return False, str(exc)
    return True, "ai-edge-litert"


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1,
                  runtime: str | None = None) -> Runner:
    """The registry's entry point; LiteRT declares no stand-ins."""
    variants = {int(n): artifacts.loader(name)
                for n, name in ((details or {}).get("batch", {}).get("variants") or {}).items()}
    return LiteRTRunner(artifacts.loader(edge_file), threads, details, variants)
