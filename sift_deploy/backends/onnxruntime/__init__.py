"""ONNX Runtime backend (x86 CPU): `export.py` writes fp32 / fp16 / int8-QDQ ONNX (attention blocks in the
export form of `rewrite.py`); `runner.py` runs it with onnxruntime's CPU execution provider.

This package's `__init__` imports nothing, so that importing the runner on a device pulls in neither torch
nor the exporter's dependencies.
"""
