"""TensorRT backend (Jetson): ONNX that the device's TensorRT parses, explicit INT8 Q/DQ, a calibration cache,
and an engine built here when TensorRT and a GPU exist (else `build_engine.sh` for the device).

`export.py` needs torch + onnx + onnxruntime; `runner.py`, `lint.py` and `calib_cache.py` import neither torch
nor tensorrt at module level, so they load on any machine.
"""
