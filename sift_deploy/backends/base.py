"""The interface every runtime backend implements (after Polygraphy's loader/runner split).

A backend package (`sift_deploy/backends/<name>/`) provides:

- `export.py`: `export(request: ExportRequest) -> ExportResult` — float edge module -> artifact
  file(s) written into `request.out_dir`. May import torch and converters (lazily).
- `runner.py`: a `Runner` subclass — artifact -> transmitted features. Must NOT import torch:
  it runs on the device with only numpy and the target runtime installed.

Runners take and return float32 NCHW arrays: normalised images in, features z out. Layout and
dtype conversions of the artifact (NHWC input, int8 I/O) happen inside the runner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PRECISIONS = ("fp32", "fp16", "int8")
CALIB_METHODS = ("minmax", "entropy", "percentile")


@dataclass
class ExportRequest:
    edge: Any  # torch.nn.Module in eval mode (typed Any so this module imports without torch)
    input_shape: tuple[int, int, int]  # (C, H, W) of one image
    precision: str  # one of PRECISIONS
    calibration: np.ndarray  # float32 (N, C, H, W), normalised exactly as the model expects
    calib_method: str  # one of CALIB_METHODS
    out_dir: Path  # write artifact files here (a temporary bundle folder)
    options: dict = field(default_factory=dict)  # the profile's [backend] table: opset, layout, trt_version, ...
    seed: int = 0


@dataclass
class ExportResult:
    files: dict[str, str]  # role -> file name inside out_dir, e.g. {"edge": "edge.int8.onnx"}
    details: dict = field(default_factory=dict)  # goes into the manifest: quantization choices, opset, versions


class Runner(ABC):
    """Loads an exported edge artifact and computes transmitted features."""

    name: str = "base"

    def __init__(self, bundle_dir: Path, edge_file: str, details: dict, threads: int = 1):
        self.bundle_dir = Path(bundle_dir)
        self.edge_file = edge_file
        self.details = details
        self.threads = threads

    @abstractmethod
    def load(self) -> None:
        """Create the session / interpreter / engine."""

    @abstractmethod
    def infer(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, C, H, W) normalised images -> float32 features z (N, ...) in NCHW."""

    def close(self) -> None:
        """Release the runtime's resources."""

    def versions(self) -> dict[str, str]:
        """Runtime package versions, for manifests and bench provenance."""
        return {}

    def __enter__(self) -> "Runner":
        self.load()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
