import numpy as np

from sift_deploy.backends.base import Artifacts, Runner


def available() -> tuple[bool, str]:
    return True, "onnx.reference"


class ReferenceEvaluatorRunner(Runner):
    name = "onnx-reference"
    label = "onnx ReferenceEvaluator (numpy)"

    def _activate(self) -> None:
        import onnx
        from onnx.reference import ReferenceEvaluator

        self.session = ReferenceEvaluator(onnx.load_from_string(self.loader.read_bytes()))
        self.input_name = self.session.input_names[0]

    def _infer(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(x, np.float32)})[0], np.float32)

    def _deactivate(self) -> None:
        self.session = None


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1, runtime=None) -> Runner:
    return ReferenceEvaluatorRunner(artifacts.loader(edge_file), threads, details)
