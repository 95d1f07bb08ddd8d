"""Runs the Jetson artifact: a TensorRT engine (edge.plan), or its ONNX in ONNX Runtime as a stand-in.

`TensorRTRunner` deserializes `edge.plan` (built on the device by `build_engine.sh`, or at export
where TensorRT and a GPU exist) with Polygraphy's `EngineFromBytes` and runs it with Polygraphy's
`TrtRunner`, which owns shapes, device buffers and streams.

`OnnxRuntimeStandInRunner` runs the very ONNX file the engine is built from (the explicit Q/DQ
model for int8) in ONNX Runtime on the CPU. Its numbers are a labelled stand-in (`--runtime
onnxruntime`), not Jetson measurements.

Imports numpy only at module level; never torch.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from ...errors import SiftError
from ..base import Artifacts, Runner
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


class TensorRTRunner(Runner):
    """Runs edge.plan through Polygraphy's TensorRT loader and runner; float32 NCHW in, float32 z out."""

    name = "tensorrt"
    label = "TensorRT"

    def _activate(self) -> None:
        ok, why = tensorrt_available()
        if not ok:
            raise SiftError(MISSING.format(why=why))
        try:
            from polygraphy.backend.trt import EngineFromBytes, TrtRunner
        except ImportError as exc:
            raise SiftError("running a TensorRT engine needs polygraphy: pip install './sift-deploy[jetson]'") from exc
        import tensorrt as trt

        data = self.loader.read_bytes()
        try:
            self._trt = TrtRunner(EngineFromBytes(data))
            self._trt.activate()
        except Exception as exc:  # Polygraphy raises PolygraphyException for engines of another TRT/GPU
            raise SiftError(f"TensorRT {trt.__version__} cannot load {self.loader.name}: engines are tied to the "
                            f"TensorRT version and GPU that built them; rebuild it here with build_engine.sh") from exc
        inputs, outputs = list(self._trt.get_input_metadata()), self._trt.engine.num_io_tensors - 1
        if len(inputs) != 1 or outputs != 1:
            raise SiftError(f"{self.loader.name} has inputs {inputs} and {outputs} outputs; expected one of each")
        self._input_name = inputs[0]

    def _infer(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise SiftError(f"input of shape {x.shape} is not (N, C, H, W)")
        outputs = self._trt.infer({self._input_name: x}, copy_outputs_to_host=True)
        return np.asarray(next(iter(outputs.values())), dtype=np.float32)

    def _deactivate(self) -> None:
        self._trt.deactivate()
        self._trt = None

    def versions(self) -> dict[str, str]:
        import polygraphy
        import tensorrt as trt

        return {"tensorrt": trt.__version__, "polygraphy": polygraphy.__version__, "numpy": np.__version__}


class OnnxRuntimeStandInRunner(OnnxRuntimeRunner):
    """The Jetson ONNX (Q/DQ for int8) in ONNX Runtime on the CPU: a stand-in, not a Jetson number."""

    name = "tensorrt-onnx@onnxruntime-cpu"


def available() -> tuple[bool, str]:
    return tensorrt_available()


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1,
                  runtime: str | None = None) -> Runner:
    """The registry's entry point: TensorRT on the engine, or (`runtime="onnxruntime"`) the ONNX the
    engine is built from, in ONNX Runtime on the CPU."""
    if runtime == "onnxruntime":
        onnx_file = details.get("onnx") or edge_file
        if onnx_file.endswith(".plan"):
            raise SiftError("this bundle's details name no ONNX file for the ONNX Runtime stand-in; re-export it")
        return OnnxRuntimeStandInRunner(artifacts.loader(onnx_file), threads, details)
    engine = edge_file if edge_file.endswith(".plan") else details.get("engine_file", ENGINE_FILE)
    if tensorrt_available()[0] and not artifacts.has(engine):
        raise SiftError(f"{engine} does not exist yet; build it on the Jetson with build_engine.sh (TensorRT is "
                        f"needed), or time the ONNX here as a labelled stand-in with `--runtime onnxruntime`")
    return TensorRTRunner(artifacts.loader(engine), threads, details)
