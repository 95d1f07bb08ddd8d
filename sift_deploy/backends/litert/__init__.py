"""LiteRT (TFLite) backend for the Raspberry Pi: litert-torch exports, ai-edge-litert runs.

`export.py` converts the float edge with litert-torch (fp32, fp16 weights, or full-integer int8
through PT2E static quantization) into one static-shape batch-1 `.tflite` file. `runner.py` runs
it with `ai_edge_litert.interpreter.Interpreter` (XNNPACK), or `tflite_runtime` where only that is
installed; it needs numpy and the runtime only, never torch.

This package's `__init__` imports nothing, so that importing the runner on a device does not pull
in the exporter's dependencies.
"""
