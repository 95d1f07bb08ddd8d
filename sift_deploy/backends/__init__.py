"""Runtime backends: onnxruntime (x86), litert (Raspberry Pi), tensorrt (Jetson)."""
