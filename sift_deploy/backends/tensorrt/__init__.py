"""TensorRT backend (Jetson): ONNX that the device's TensorRT parses, explicit INT8 Q/DQ, a calibration cache,
and an engine built here when TensorRT and a GPU exist (else `build_engine.sh` for the device).

`export.py` needs torch + onnx + onnxruntime; `runner.py`, `lint.py` and `calib_cache.py` import neither torch
nor tensorrt at module level, so they load on any machine.
"""

from ..base import Backend

BACKEND = Backend(
    name="tensorrt",
    label="TensorRT",
    package=__name__,
    packages=("tensorrt", "polygraphy", "onnx", "onnxruntime"),
    runtime_modules=(("tensorrt",),),
    install_hint="TensorRT comes with JetPack on the Jetson (python3-libnvinfer); it is not on PyPI",
    precisions=("fp32", "fp16", "int8"),
    artifact_roles=("edge", "onnx", "onnx_fp32", "calibration_cache", "build_script"),
    stand_ins={"onnxruntime": "stand-in: the TensorRT-bound ONNX run by ONNX Runtime on the CPU "
                              "(not a TensorRT measurement)"},
)
