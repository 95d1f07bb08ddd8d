"""ONNX Runtime backend (x86 CPU): `export.py` writes fp32 / fp16 / int8-QDQ ONNX (attention blocks in the
export form of `rewrite.py`); `runner.py` runs it with onnxruntime's CPU execution provider.

This package's `__init__` imports nothing, so that importing the runner on a device pulls in neither torch
nor the exporter's dependencies.
"""

from ..base import Backend

BACKEND = Backend(
    name="onnxruntime",
    label="ONNX Runtime CPU",
    package=__name__,
    packages=("onnxruntime", "onnx"),
    runtime_modules=(("onnxruntime",),),
    install_hint="pip install './sift-deploy[x86]'",
    precisions=("fp32", "fp16", "int8"),
)
