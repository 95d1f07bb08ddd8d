"""A float PyTorch module (edge -> features, cloud -> logits) behind the same runner life cycle as
the exported artifacts, so that every place that runs a model goes through a runner."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import SiftError
from ..base import Artifacts, Loader, Runner, run_in_batches

BATCH = 500


class ModuleLoader(Loader):
    """A module already in memory (the checkpoint's edge or cloud)."""

    def __init__(self, module: Any, name: str = "torch module"):
        self.module = module
        self.name = name

    def read_bytes(self) -> bytes:
        raise SiftError("a torch module in memory has no file form here; export it first")


def available() -> tuple[bool, str]:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False, "torch is not installed; pip install torch==2.13.0 './sift-deploy[export]'"
    return True, "torch"


class TorchRunner(Runner):
    """Runs the module in eval mode under inference_mode, in batches of at most BATCH."""

    name = "torch"
    label = "PyTorch eager (float)"

    def __init__(self, loader: ModuleLoader, threads: int | None = None, batch: int = BATCH):
        super().__init__(loader, threads or 0)
        self.batch = batch

    def _activate(self) -> None:
        import torch

        self._torch = torch
        self.module = self.loader.module.eval()
        if self.threads:
            torch.set_num_threads(self.threads)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            return run_in_batches(lambda v: self.module(torch.from_numpy(np.ascontiguousarray(v, np.float32))).numpy(),
                                  x, self.batch)

    def _deactivate(self) -> None:
        self.module = None

    def versions(self) -> dict[str, str]:
        return {"torch": self._torch.__version__, "numpy": np.__version__}


def torch_runner(module: Any, name: str = "torch module", threads: int | None = None) -> TorchRunner:
    return TorchRunner(ModuleLoader(module, name), threads)


def torch_outputs(module: Any, inputs: np.ndarray) -> np.ndarray:
    """One pass of a float module over `inputs` (activate, infer in batches, deactivate)."""
    with torch_runner(module) as runner:
        return runner.infer(inputs)


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1,
                  runtime: str | None = None) -> Runner:
    raise SiftError("the torch backend runs modules in memory (torch_runner), not bundle files")
