"""LiteRT (TFLite) backend for the Raspberry Pi: litert-torch exports, ai-edge-litert runs.

`export.py` converts the float edge with litert-torch (fp32, fp16 weights, or full-integer int8
through PT2E static quantization) into one static-shape batch-1 `.tflite` file. `runner.py` runs
it with `ai_edge_litert.interpreter.Interpreter` (XNNPACK), or `tflite_runtime` where only that is
installed; it needs numpy and the runtime only, never torch.

This package's `__init__` imports nothing, so that importing the runner on a device does not pull
in the exporter's dependencies.
"""

from ..base import Backend

BACKEND = Backend(
    name="litert",
    label="LiteRT (XNNPACK)",
    package=__name__,
    packages=("ai-edge-litert", "litert-torch", "tflite-runtime"),
    runtime_modules=(("ai_edge_litert.interpreter", "tflite_runtime.interpreter"),),
    install_hint="pip install './sift-deploy[rpi]' (ai-edge-litert) on the Pi, or './sift-deploy[rpi-export]' to export",
    precisions=("fp32", "fp16", "int8"),
    artifact_roles=("edge", "edge_b*"),  # edge_bN: the graph converted at batch N (profile's batch_variants)
)
