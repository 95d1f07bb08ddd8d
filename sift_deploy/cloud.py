"""The float cloud half, exported as ONNX; on devices it runs through `backends.open_cloud_runner`
(onnxruntime, no torch) for parity and the accuracy of int8-on-the-wire features."""

from __future__ import annotations

from pathlib import Path

CLOUD_FILE = "cloud.onnx"


def export_cloud(cloud_module, feature_shape: tuple[int, ...], path: Path, opset: int = 17) -> None:
    """fp32 ONNX of the cloud with a dynamic batch axis (legacy exporter: one file, BN folded)."""
    import torch

    sample = torch.zeros(2, *feature_shape)
    with torch.no_grad():
        torch.onnx.export(cloud_module.eval(), (sample,), str(path), input_names=["z"], output_names=["logits"],
                          dynamic_axes={"z": {0: "N"}, "logits": {0: "N"}}, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
