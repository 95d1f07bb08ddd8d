"""Runs the Jetson artifact: a TensorRT engine (edge.plan), or its ONNX in ONNX Runtime as a stand-in.

`TensorRTRunner` deserializes `edge.plan` (built on the device by `build_engine.sh`, or at export
where TensorRT and a GPU exist) and runs it with the name-based API of TensorRT >= 8.5
(`set_input_shape`, `set_tensor_address`, `execute_async_v3`); device buffers come from
cuda-python, or from Polygraphy's ctypes CUDA wrapper when cuda-python is absent.

`OnnxRuntimeStandInRunner` runs the very ONNX file the engine is built from (the explicit Q/DQ
model for int8) in ONNX Runtime on the CPU. Its numbers are a labelled stand-in (`--runtime
onnxruntime`), not Jetson measurements.

Imports numpy only at module level; never torch.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from ...errors import SiftError
from ..base import Runner
from ..onnxruntime.runner import OnnxRuntimeRunner

ENGINE_FILE = "edge.plan"
MISSING = ("TensorRT is not available here ({why}); the engine can only be built and run on the Jetson: copy the "
           "bundle there and run build_engine.sh, then bench. To time the same Q/DQ ONNX on this machine's CPU as a "
           "labelled stand-in, pass `--runtime onnxruntime`")


def tensorrt_available() -> tuple[bool, str]:
    """(True, version) when the tensorrt module imports and an NVIDIA GPU is visible; else (False, why)."""
    try:
        import tensorrt as trt  # noqa: F401
    except Exception:  # ImportError, or OSError from a wheel stub without libnvinfer
        return False, "tensorrt Python module / NVIDIA GPU not available: no tensorrt module"
    if not _gpu_present():
        return False, "tensorrt Python module / NVIDIA GPU not available: no NVIDIA GPU visible"
    return True, getattr(trt, "__version__", "unknown")


def _gpu_present() -> bool:
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    # discrete GPUs expose /dev/nvidia0..; Jetson's integrated GPU exposes /dev/nvhost-* / nvgpu
    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/nvhost-ctrl-gpu") or glob.glob("/dev/nvgpu/*"))


class _CudaBuffers:
    """Minimal CUDA memory + stream handling through cuda-python, or Polygraphy's wrapper."""

    def __init__(self):
        self.api = None
        try:
            try:
                from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
            except ImportError:
                from cuda import cudart  # older cuda-python
            self.cudart, self.api = cudart, "cuda-python"
            self.stream = self._check(cudart.cudaStreamCreate())
        except ImportError:
            try:
                from polygraphy import cuda as pcuda
            except ImportError as exc:
                raise SiftError("running a TensorRT engine needs cuda-python (`pip install cuda-python`) or polygraphy "
                                "(`pip install polygraphy`) for device buffers") from exc
            self.pcuda, self.api = pcuda, "polygraphy.cuda"
            self.stream = pcuda.Stream()
        self.buffers: dict[str, tuple[int, object]] = {}  # name -> (nbytes, device buffer)

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise SiftError(f"CUDA call failed with error {err}")
        return rest[0] if len(rest) == 1 else rest

    def device(self, name: str, nbytes: int) -> int:
        """Device pointer of a buffer of at least `nbytes` bytes kept under `name`."""
        held = self.buffers.get(name)
        if held is None or held[0] < nbytes:
            if held is not None:
                self._free(held[1])
            if self.api == "cuda-python":
                buf = self._check(self.cudart.cudaMalloc(nbytes))
            else:
                buf = self.pcuda.DeviceArray(shape=(nbytes,), dtype=np.uint8)
            self.buffers[name] = held = (nbytes, buf)
        return int(held[1]) if self.api == "cuda-python" else int(held[1].ptr)

    def to_device(self, name: str, host: np.ndarray) -> int:
        ptr = self.device(name, host.nbytes)
        if self.api == "cuda-python":
            kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            self._check(self.cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream))
        else:
            self.pcuda.wrapper().memcpy(ptr, host.ctypes.data, host.nbytes, self.pcuda.MemcpyKind.HostToDevice, self.stream.ptr)
        return ptr

    def to_host(self, name: str, host: np.ndarray) -> None:
        ptr = self.device(name, host.nbytes)
        if self.api == "cuda-python":
            kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
            self._check(self.cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream))
        else:
            self.pcuda.wrapper().memcpy(host.ctypes.data, ptr, host.nbytes, self.pcuda.MemcpyKind.DeviceToHost, self.stream.ptr)

    def stream_handle(self) -> int:
        if self.api == "cuda-python":
            return int(self.stream.getPtr()) if hasattr(self.stream, "getPtr") else int(self.stream)
        return int(self.stream.ptr)

    def synchronize(self) -> None:
        if self.api == "cuda-python":
            self._check(self.cudart.cudaStreamSynchronize(self.stream))
        else:
            self.stream.synchronize()

    def _free(self, buf) -> None:
        if self.api == "cuda-python":
            self.cudart.cudaFree(buf)
        else:
            buf.free()

    def close(self) -> None:
        for _, buf in self.buffers.values():
            self._free(buf)
        self.buffers.clear()
        if self.api == "cuda-python":
            self.cudart.cudaStreamDestroy(self.stream)
        else:
            self.stream.free()


class TensorRTRunner(Runner):
    """Runs edge.plan with TensorRT; float32 NCHW in, float32 z out."""

    name = "tensorrt"
    label = "TensorRT"

    def load(self) -> None:
        ok, why = tensorrt_available()
        if not ok:
            raise SiftError(MISSING.format(why=why))
        import tensorrt as trt

        engine_name = self.details.get("engine_file", ENGINE_FILE)
        path = self.bundle_dir / (self.edge_file if self.edge_file.endswith(".plan") else engine_name)
        if not path.is_file():
            raise SiftError(f"{path} does not exist yet; build it on this device with {self.bundle_dir / 'build_engine.sh'}")
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if self.engine is None:
            raise SiftError(f"TensorRT {trt.__version__} cannot load {path.name}: engines are tied to the TensorRT version "
                            "and GPU that built them; rebuild it here with build_engine.sh")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise SiftError(f"{path.name} has inputs {self.inputs} and outputs {self.outputs}; expected one of each")
        self.cuda = _CudaBuffers()
        self.trt = trt

    def infer(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise SiftError(f"input of shape {x.shape} is not (N, C, H, W)")
        name_in, name_out = self.inputs[0], self.outputs[0]
        if not self.context.set_input_shape(name_in, tuple(x.shape)):
            raise SiftError(f"the engine does not accept input shape {x.shape}; rebuild it with a larger --maxShapes")
        out_shape = tuple(self.context.get_tensor_shape(name_out))
        out = np.empty(out_shape, dtype=np.float32)
        self.context.set_tensor_address(name_in, self.cuda.to_device(name_in, x))
        self.context.set_tensor_address(name_out, self.cuda.device(name_out, out.nbytes))
        if not self.context.execute_async_v3(self.cuda.stream_handle()):
            raise SiftError("TensorRT inference failed (execute_async_v3 returned False)")
        self.cuda.to_host(name_out, out)
        self.cuda.synchronize()
        return out

    def close(self) -> None:
        if getattr(self, "cuda", None) is not None:
            self.cuda.close()
            self.cuda = None
        self.context = self.engine = self.runtime = None

    def versions(self) -> dict[str, str]:
        import tensorrt as trt

        return {"tensorrt": trt.__version__, "cuda_buffers": getattr(self.cuda, "api", "")}


class OnnxRuntimeStandInRunner(OnnxRuntimeRunner):
    """The Jetson ONNX (Q/DQ for int8) in ONNX Runtime on the CPU: a stand-in, not a Jetson number."""

    name = "tensorrt-onnx@onnxruntime-cpu"
    label = "stand-in: the TensorRT-bound ONNX run by ONNX Runtime on the CPU (not a TensorRT measurement)"

    def __init__(self, bundle_dir: Path, edge_file: str, details: dict, threads: int = 1):
        onnx_file = details.get("onnx") or edge_file
        if onnx_file.endswith(".plan"):
            raise SiftError("this bundle's details name no ONNX file for the ONNX Runtime stand-in; re-export it")
        super().__init__(bundle_dir, onnx_file, details, threads)


RUNTIMES = {"tensorrt": TensorRTRunner, "onnxruntime": OnnxRuntimeStandInRunner}


def create_runner(bundle_dir: Path, edge_file: str, details: dict, threads: int = 1, kind: str = "native") -> Runner:
    """The backends registry's entry point.

    - "native": TensorRT (raises SiftError with the way out where TensorRT / a GPU is missing);
    - "stand_in" (`--runtime onnxruntime`): the engine's ONNX in ONNX Runtime on the CPU;
    - "parity" (at export): TensorRT where it runs, else the ONNX Runtime stand-in, so that the
      exported Q/DQ model's parity is checked on the export host.
    """
    if kind == "stand_in" or (kind == "parity" and not tensorrt_available()[0]):
        return OnnxRuntimeStandInRunner(bundle_dir, edge_file, details, threads)
    if kind not in ("native", "parity", "stand_in"):
        raise SiftError(f"unknown runner kind {kind!r}")
    return TensorRTRunner(bundle_dir, edge_file, details, threads)
