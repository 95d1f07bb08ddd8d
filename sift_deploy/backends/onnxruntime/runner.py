"""Runs an exported edge ONNX file in ONNX Runtime on the CPU (numpy + onnxruntime only, no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import SiftError
from ..base import Runner

INPUT_NAME = "input"


def session_options(threads: int = 1):
    """The session settings every measurement and the runner use: CPU, `threads` intra-op threads,
    sequential execution, all graph optimisations (NCHWc for float convs, NHWC for int8 ones)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class OnnxRuntimeRunner(Runner):
    """`onnxruntime.InferenceSession` on CPUExecutionProvider; float32 NCHW in, float32 z out."""

    name = "onnxruntime"
    label = "ONNX Runtime CPU"

    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise SiftError("onnxruntime is not installed; install it with `pip install onnxruntime` "
                            "(or `pip install 'sift-deploy[x86]'`)") from exc
        path = self.bundle_dir / self.edge_file
        if not path.is_file():
            raise SiftError(f"edge model {path} does not exist; re-export the bundle")
        try:
            self.session = ort.InferenceSession(str(path), session_options(self.threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for corrupt or unsupported files
            raise SiftError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.input_shape = tuple(inp.shape[1:])

    def infer(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or (all(isinstance(d, int) for d in self.input_shape) and tuple(x.shape[1:]) != self.input_shape):
            raise SiftError(f"input of shape {x.shape} does not fit the edge model's (N, {', '.join(map(str, self.input_shape))})")
        x = np.ascontiguousarray(x, dtype=np.float32)
        z = self.session.run([self.output_name], {self.input_name: x})[0]
        return np.asarray(z, dtype=np.float32)

    def close(self) -> None:
        self.session = None

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "numpy": np.__version__}




def create_runner(bundle_dir: Path, edge_file: str, details: dict, threads: int = 1, kind: str = "native") -> Runner:
    """The backends registry's entry point; onnxruntime is its own runtime everywhere, so `kind` changes nothing."""
    return OnnxRuntimeRunner(bundle_dir, edge_file, details, threads)
