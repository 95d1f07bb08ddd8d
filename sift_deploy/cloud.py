"""The float cloud half, exported as ONNX and run with onnxruntime (no torch): used for parity and
for the accuracy of int8-on-the-wire features on devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import SiftError

CLOUD_FILE = "cloud.onnx"


class CloudRunner:
    def __init__(self, path: Path, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise SiftError("onnxruntime is not installed, so the cloud model cannot run here; "
                            "pip install 'sift-deploy[x86]'") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def infer(self, z: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(z, np.float32)})[0]


def export_cloud(cloud_module, feature_shape: tuple[int, ...], path: Path, opset: int = 17) -> None:
    """fp32 ONNX of the cloud with a dynamic batch axis (legacy exporter: one file, BN folded)."""
    import torch

    sample = torch.zeros(2, *feature_shape)
    with torch.no_grad():
        torch.onnx.export(cloud_module.eval(), (sample,), str(path), input_names=["z"], output_names=["logits"],
                          dynamic_axes={"z": {0: "N"}, "logits": {0: "N"}}, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
