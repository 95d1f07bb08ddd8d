import numpy as np
from onnx.reference.ops.op_max_pool import MaxPool as ReferenceMaxPool

from sift_deploy.backends.base import Artifacts, Runner


class MaxPool(ReferenceMaxPool):  # new_ops replaces an op by its class name
    """MaxPool with kernel == stride and no padding or dilation as one numpy reduction; the reference
    op loops over output pixels in Python, which made this backend's parity run take half a minute."""

    def _run(self, x, auto_pad=None, ceil_mode=None, dilations=None, kernel_shape=None, pads=None,
             storage_order=None, strides=None):
        k = list(kernel_shape or [])
        tiled = (len(k) == 2 and list(strides or [1, 1]) == k and not any(pads or []) and not ceil_mode
                 and all(d == 1 for d in (dilations or [1, 1])) and auto_pad in (None, "NOTSET")
                 and len(self.output) == 1)
        if not tiled:
            return super()._run(x, auto_pad, ceil_mode, dilations, kernel_shape, pads, storage_order, strides)
        n, c, h, w = x.shape
        oh, ow = h // k[0], w // k[1]
        tiles = x[:, :, :oh * k[0], :ow * k[1]].reshape(n, c, oh, k[0], ow, k[1])
        return (tiles.max(axis=(3, 5)),)


def available() -> tuple[bool, str]:
    return True, "onnx.reference"


class ReferenceEvaluatorRunner(Runner):
    name = "onnx-reference"
    label = "onnx ReferenceEvaluator (numpy)"

    def _activate(self) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        self.session = ReferenceEvaluator(onnx.load_from_string(self.loader.read_bytes()), new_ops=[MaxPool])
        self.input_name = self.session.input_names[0]

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0], np.float32)

    def _deactivate(self) -> None:
        self.session = None


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1, runtime=None) -> Runner:
    return ReferenceEvaluatorRunner(artifacts.loader(edge_file), threads, details)
