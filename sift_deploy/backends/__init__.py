"""Runtime backends, one package each, registered here by one line.

Every other part of sift-deploy learns about a runtime from its `Backend` description (see
base.py): profiles check names and precisions against it, bench labels and versions come from it,
stand-ins are declared by it. Importing this module imports no runtime and no torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import SiftError
from .base import Artifacts, Backend, ExportRequest, ExportResult, Runner

_PACKAGES = [
    "sift_deploy.backends.onnxruntime",
    "sift_deploy.backends.litert",
    "sift_deploy.backends.tensorrt",
    "sift_deploy.backends.torch",
]
_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add a backend (a new runtime package adds its line to _PACKAGES; tests may register directly)."""
    _REGISTRY[backend.name] = backend
    return backend


def _load_registry() -> dict[str, Backend]:
    for package in _PACKAGES:
        described = importlib.import_module(package).BACKEND
        _REGISTRY.setdefault(described.name, described)
    return _REGISTRY


def backends() -> dict[str, Backend]:
    return dict(_load_registry())


def export_targets() -> tuple[str, ...]:
    """Names a target profile may pick: the backends that export."""
    return tuple(name for name, backend in _load_registry().items() if backend.exports)


def stand_in_runtimes() -> dict[str, list[str]]:
    """Runtime name -> the backends whose bundles it may run as a labelled stand-in (`--runtime`)."""
    found: dict[str, list[str]] = {}
    for name, backend in _load_registry().items():
        for runtime in backend.stand_ins:
            found.setdefault(runtime, []).append(name)
    return found


def get_backend(name: str) -> Backend:
    registry = _load_registry()
    if name not in registry:
        raise SiftError(f"backend '{name}' is unknown; use one of {', '.join(export_targets())}")
    return registry[name]


def export_edge(backend: str, request: ExportRequest) -> ExportResult:
    return get_backend(backend).export(request)


def open_runner(bundle_dir: Path, manifest: dict, threads: int = 1, runtime: str | None = None,
                fallback: bool = False) -> Runner:
    """The runner for a bundle's edge: its own runtime, or the stand-in `runtime` names.

    With `fallback`, a backend whose runtime is not available here falls back to its first
    stand-in (labelled so): export's parity run and `check` use that for Jetson bundles.
    """
    backend = get_backend(manifest["backend"])
    if runtime is None and fallback and backend.stand_ins and not backend.available()[0]:
        runtime = next(iter(backend.stand_ins))
    return backend.create_runner(Artifacts(folder=Path(bundle_dir)), manifest["edge_file"],
                                 manifest["export"]["details"], threads, runtime)


def open_cloud_runner(bundle_dir: Path, manifest: dict, threads: int = 1) -> Runner:
    """The float cloud half (cloud.onnx) in ONNX Runtime: parity and int8-wire accuracy on devices."""
    return get_backend("onnxruntime").create_runner(Artifacts(folder=Path(bundle_dir)), manifest["cloud_file"],
                                                     {"role": "cloud"}, threads)


def runtime_versions(backend: str) -> dict[str, str]:
    return get_backend(backend).versions()


__all__ = ["Artifacts", "Backend", "ExportRequest", "ExportResult", "Runner", "backends", "export_edge",
           "export_targets", "get_backend", "open_cloud_runner", "open_runner", "register", "runtime_versions",
           "stand_in_runtimes"]
