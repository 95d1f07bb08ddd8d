"""Runtime backends: onnxruntime (x86), litert (Raspberry Pi), tensorrt (Jetson).

Exporters may import torch and converters; runners never do (they run on the device). Both are
imported lazily here, so that a device with only one runtime installed can use its backend.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path

from ..errors import SiftError
from .base import ExportRequest, ExportResult, Runner

INSTALL_HINTS = {
    "onnxruntime": "pip install 'sift-deploy[x86]'",
    "litert": "pip install 'sift-deploy[rpi]' (ai-edge-litert) on the Pi, or 'sift-deploy[rpi-export]' to export",
    "tensorrt": "TensorRT comes with JetPack on the Jetson (python3-libnvinfer); it is not on PyPI",
}
# Which runner serves a bundle when the user picks a runtime other than the bundle's own.
STAND_INS = {("tensorrt", "onnxruntime"): "stand_in"}
RUNTIME_PACKAGES = {
    "onnxruntime": ("onnxruntime", "onnx"),
    "litert": ("ai-edge-litert", "litert-torch", "tflite-runtime"),
    "tensorrt": ("tensorrt", "onnx", "onnxruntime"),
}


def _module(backend: str, part: str):
    try:
        return importlib.import_module(f"{__name__}.{backend}.{part}")
    except ImportError as exc:
        raise SiftError(f"the {backend} backend cannot load ({exc}); {INSTALL_HINTS.get(backend, '')}") from exc


def export_edge(backend: str, request: ExportRequest) -> ExportResult:
    return _module(backend, "export").export(request)


def open_runner(bundle_dir: Path, manifest: dict, threads: int = 1, runtime: str | None = None,
                for_parity: bool = False) -> Runner:
    """The runner for a bundle: its own backend, or a labelled stand-in runtime (`runtime`)."""
    backend = manifest["backend"]
    module = _module(backend, "runner")
    kind = "native"
    if runtime is not None and runtime != backend:
        if (backend, runtime) not in STAND_INS:
            raise SiftError(f"a {backend} bundle cannot run under {runtime}")
        kind = STAND_INS[(backend, runtime)]
    elif for_parity:
        kind = "parity"
    return module.create_runner(Path(bundle_dir), manifest["edge_file"], manifest["export"]["details"], threads, kind)


def runtime_versions(backend: str) -> dict[str, str]:
    out = {}
    for package in ("numpy", "torch", *RUNTIME_PACKAGES.get(backend, ())):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return out


__all__ = ["ExportRequest", "ExportResult", "Runner", "export_edge", "open_runner", "runtime_versions"]
