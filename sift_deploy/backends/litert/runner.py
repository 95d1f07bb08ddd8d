"""Run an exported `.tflite` edge with ai-edge-litert (or tflite-runtime): numpy only, no torch.

Takes float32 NCHW normalised images and returns float32 NCHW features z. The runner does what
the file needs around that: NHWC transposes for channels-last exports, and int8 quantize /
dequantize with the scale and zero-point stored in the file's input and output tensors.

The files are static-shape batch-1 graphs (see export.py): a batch of N images is N invocations.
A file whose input has a dynamic batch axis (shape_signature -1, e.g. from another converter) is
resized to the batch and invoked once.
"""

from __future__ import annotations

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

    def __init__(self, loader: Loader, threads: int = 1, details: dict | None = None):
        super().__init__(loader, threads, details)
        self.layout = str(self.details.get("layout", "NCHW")).upper()
        self.runtime: str | None = None
        self._interpreter = None

    def _activate(self) -> None:
        content = self.loader.read_bytes()
        interpreter_class, self.runtime = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_content=content, num_threads=self.threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise SiftError(f"{self.runtime} cannot load {self.loader.name} ({exc}); the file may be corrupt") from exc
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
        interpreter = self._interpreter
        interpreter.set_tensor(self._input["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(self._output["index"])

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
            return self._from_model(self._invoke(q))
        if len(q) % self._batch:
            raise SiftError(f"this edge file runs batches of {self._batch}; {len(q)} images is not a multiple")
        outs = [self._invoke(q[i:i + self._batch]) for i in range(0, len(q), self._batch)]
        return self._from_model(np.concatenate(outs))

    def _deactivate(self) -> None:
        self._interpreter = None

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


def available() -> tuple[bool, str]:
    try:
        _interpreter_class()
    except SiftError as exc:
        return False, str(exc)
    return True, "ai-edge-litert"


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1,
                  runtime: str | None = None) -> Runner:
    """The registry's entry point; LiteRT declares no stand-ins."""
    return LiteRTRunner(artifacts.loader(edge_file), threads, details)
