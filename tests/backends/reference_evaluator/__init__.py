"""A tiny backend that lives in the tests: fp32 ONNX run by onnx's own ReferenceEvaluator (pure
numpy). It proves that adding a runtime is one package plus one `register` call, with nothing
else in sift_deploy naming it."""

from sift_deploy.backends.base import Backend

BACKEND = Backend(
    name="onnx-reference",
    label="onnx ReferenceEvaluator (numpy)",
    package=__name__,
    packages=("onnx",),
    runtime_modules=(("onnx.reference",),),
    install_hint="pip install onnx",
    precisions=("fp32",),
)
