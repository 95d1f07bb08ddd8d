"""The shape every runtime backend has (after Polygraphy's loader / runner split).

A backend package (`sift_deploy/backends/<name>/`) provides:

- `__init__.py`: `BACKEND`, a `Backend` that describes it in one place (name, label, runtime
  packages, install hint, stand-ins, artifact roles, precisions). Importing it imports no runtime.
- `export.py` (only for backends a target profile can pick): `export(request) -> ExportResult`,
  float edge module -> artifact file(s) in `request.out_dir`, and `quantizable_layers(request)`,
  the names `options["int8_layers"]` may list to make exactly those layers int8 (the precision
  search). May import torch lazily.
- `runner.py`: `available() -> (bool, why)` and `create_runner(artifacts, details, threads,
  runtime) -> Runner`. Device runners must not import torch: they run with numpy and the runtime.

A runner is built from a loader (a file path, bytes in memory, or a bundle's file) and has the
life cycle activate -> infer ... -> deactivate. Runners take and return float32 NCHW arrays;
layout and dtype conversions of the artifact (NHWC input, int8 I/O) happen inside the runner.
"""

from __future__ import annotations

import fnmatch
import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SiftError

PRECISIONS = ("fp32", "fp16", "int8")
CALIB_METHODS = ("minmax", "entropy", "percentile")
NATIVE = "native"
STAND_IN = "stand-in"


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
    # the artifact's own I/O as read back from the file: {"input": tensor, "output": tensor}, each
    # {"name", "dtype", "shape", and "scale"/"zero_point" when quantized} (see artifact_tensor)
    io: dict = field(default_factory=dict)


def artifact_tensor(name: str, dtype: str, shape: list, scale: float | None = None,
                    zero_point: int | None = None) -> dict:
    """One I/O tensor of an exported file, as the manifest records it (dynamic dimensions are None)."""
    out = {"name": name, "dtype": dtype, "shape": [None if d is None else int(d) for d in shape]}
    if scale is not None:
        out.update(scale=float(scale), zero_point=int(zero_point or 0))
    return out


# --------------------------------------------------------------------------- loaders


class Loader(ABC):
    """Where an artifact comes from. Runtimes that take bytes read them; others get a path."""

    name: str

    @abstractmethod
    def read_bytes(self) -> bytes: ...

    def path(self) -> Path | None:
        """The file, when the artifact is one (runtimes that only open files need it)."""
        return None


class FileLoader(Loader):
    def __init__(self, path: Path):
        self._path = Path(path)
        self.name = self._path.name

    def read_bytes(self) -> bytes:
        if not self._path.is_file():
            raise SiftError(f"{self._path} does not exist; re-export the bundle")
        return self._path.read_bytes()

    def path(self) -> Path:
        if not self._path.is_file():
            raise SiftError(f"{self._path} does not exist; re-export the bundle")
        return self._path


class BytesLoader(Loader):
    """An artifact built in memory (a candidate during a precision search, a test model)."""

    def __init__(self, data: bytes, name: str = "<in memory>"):
        self._data = bytes(data)
        self.name = name

    def read_bytes(self) -> bytes:
        return self._data


class Artifacts:
    """The files of one exported edge, by name: a bundle folder, or bytes held in memory."""

    def __init__(self, folder: Path | None = None, files: dict[str, bytes] | None = None):
        self.folder = Path(folder) if folder is not None else None
        self.files = dict(files or {})

    def loader(self, name: str) -> Loader:
        if name in self.files:
            return BytesLoader(self.files[name], name)
        if self.folder is None:
            raise SiftError(f"the artifact {name} is neither in memory nor in a folder")
        return FileLoader(self.folder / name)

    def has(self, name: str) -> bool:
        return name in self.files or (self.folder is not None and (self.folder / name).is_file())


# --------------------------------------------------------------------------- runners


class Runner(ABC):
    """activate / infer / deactivate around one artifact. `infer` before `activate` is an error."""

    name: str = "base"
    label: str = "base"

    def __init__(self, loader: Loader, threads: int = 1, details: dict | None = None):
        self.loader = loader
        self.threads = int(threads)
        self.details = dict(details or {})
        self.kind = NATIVE
        self.is_active = False

    def activate(self) -> "Runner":
        if self.is_active:
            raise SiftError(f"the {self.name} runner for {self.loader.name} is already active")
        self._activate()
        self.is_active = True
        return self

    def infer(self, x: np.ndarray) -> np.ndarray:
        if not self.is_active:
            raise SiftError(f"the {self.name} runner for {self.loader.name} was asked to infer before activate(); "
                            f"use `with runner:` or call activate() first")
        return self._infer(x)

    def raw_call(self):
        """(call, prepare): the runtime's own call on the active artifact, and the conversion of float32
        NCHW input into what that call takes (done once, outside any timing). The default is `infer`."""
        return self.infer, (lambda x: x)

    def profile(self, x: np.ndarray, runs: int = 50, warmup: int = 10) -> dict:
        """Per-op times of `runs` calls on `x` (after `warmup`), as `profiling.op_profile` shapes them.
        Each backend measures its own way, in its own session/interpreter (profiling slows a run
        down, so these figures never mix with the timed loop). Works whether or not the runner is active."""
        raise SiftError(f"the {self.name} runner has no per-op profiler; --profile works for "
                        "onnxruntime and litert bundles")

    def deactivate(self) -> None:
        if self.is_active:
            self._deactivate()
            self.is_active = False

    @abstractmethod
    def _activate(self) -> None:
        """Create the session / interpreter / engine."""

    @abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, ...) inputs -> float32 outputs (N, ...)."""

    def _deactivate(self) -> None:
        """Release the runtime's resources."""

    def versions(self) -> dict[str, str]:
        """Runtime package versions, for manifests and bench provenance."""
        return {"numpy": np.__version__}

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()


def run_in_batches(fn, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


# --------------------------------------------------------------------------- backend descriptions


@dataclass(frozen=True)
class Backend:
    """Everything the rest of sift-deploy may know about one runtime, in one place."""

    name: str  # as written in target profiles and manifests
    label: str  # what bench and reports call it
    package: str  # dotted name of the backend package
    packages: tuple[str, ...]  # distributions whose versions are recorded with results
    runtime_modules: tuple[tuple[str, ...], ...]  # import names (alternatives) bench times the import of
    install_hint: str
    precisions: tuple[str, ...] = ()  # empty: no exporter, a profile cannot pick it
    artifact_roles: tuple[str, ...] = ("edge",)  # keys of ExportResult.files; fnmatch patterns allowed
    # runtime name -> what a result of that stand-in is labelled (the stand-in runs another runtime)
    stand_ins: dict[str, str] = field(default_factory=dict)

    @property
    def exports(self) -> bool:
        return bool(self.precisions)

    def _module(self, part: str):
        try:
            return importlib.import_module(f"{self.package}.{part}")
        except ImportError as exc:
            raise SiftError(f"the {self.name} backend cannot load ({exc}); {self.install_hint}") from exc

    def export(self, request: ExportRequest) -> ExportResult:
        if not self.exports:
            raise SiftError(f"the {self.name} backend runs models but does not export them")
        result = self._module("export").export(request)
        undeclared = [role for role in sorted(result.files)
                      if not any(fnmatch.fnmatchcase(role, declared) for declared in self.artifact_roles)]
        if "edge" not in result.files or undeclared:
            raise SiftError(f"internal error: the {self.name} backend wrote artifact roles {sorted(result.files)}; "
                            f"it declares {list(self.artifact_roles)} and every export must write 'edge'")
        return result

    def quantizable_layers(self, request: ExportRequest) -> list[str]:
        """Names `options["int8_layers"]` may list (convs or module groups, the backend's unit)."""
        if not self.exports:
            raise SiftError(f"the {self.name} backend runs models but does not export them")
        return self._module("export").quantizable_layers(request)

    def rule_int8_layers(self, request: ExportRequest, details: dict) -> list[str] | None:
        """The layers (named as in `quantizable_layers`) that the backend's own fixed rules made int8 in
        an export without `int8_layers` whose details these are; None where the backend cannot tell."""
        rule = getattr(self._module("export"), "rule_int8_layers", None)
        return None if rule is None else rule(request, details)

    def available(self) -> tuple[bool, str]:
        return self._module("runner").available()

    def create_runner(self, artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1,
                      runtime: str | None = None) -> Runner:
        if runtime not in (None, self.name) and runtime not in self.stand_ins:
            allowed = ", ".join([self.name, *self.stand_ins])
            raise SiftError(f"a {self.name} bundle cannot run under {runtime}; use one of: {allowed}")
        runtime = None if runtime == self.name else runtime
        runner = self._module("runner").create_runner(artifacts, edge_file, details, threads, runtime)
        if runtime is not None:
            runner.kind = STAND_IN
            runner.label = self.stand_ins[runtime]
        return runner

    def versions(self) -> dict[str, str]:
        out = {}
        for package in ("numpy", *self.packages):
            try:
                out[package] = metadata.version(package)
            except metadata.PackageNotFoundError:
                continue
        return out
