"""Checkpoints: the project's safetensors format, and official `.pth` state_dicts.

Project format: one `.safetensors` file whose header metadata holds, under the key `sift_deploy`,
a JSON document (schema_version, architecture, sizes, normalisation, class names, dataset and
split seed, training recipe, final metrics, tool version). One file, so weights and metadata can
never drift apart.

Official format: `{'epoch', 'model': state_dict, 'best_cl_acc'}` (or a bare state_dict), loaded with
`torch.load(weights_only=True)`; `module.` / `_module.` prefixes (DataParallel, Opacus) are removed.
Nothing here ever unpickles code.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .errors import SiftError
from .fileio import atomic_file, sha256_file
from .models import ARCHITECTURES, ModelSpec, SplitClassifier, build_model

SCHEMA_VERSION = 1
METADATA_KEY = "sift_deploy"
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE_CHECKPOINT = REFERENCE_DIR / "siftfunnel-cnn-fmnist.safetensors"
REFERENCE_TWIN = REFERENCE_DIR / "plain-cnn-fmnist.safetensors"
SAFETENSORS_SUFFIXES = {".safetensors"}
# The official training names its checkpoints {dataset}_{model}_{block_idx}_pv4_... (project_infodr_v4.py:L531).
OFFICIAL_NAME = re.compile(r"^[^_]+_[^_]+_(\d+)_pv4")
TORCH_SUFFIXES = {".pth", ".pt", ".ckpt", ".tar", ".bin", ".pkl"}


@dataclass
class Checkpoint:
    model: SplitClassifier
    metadata: dict
    path: Path
    sha256: str
    official: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # notes the user must see (the CLI prints them)

    @property
    def spec(self) -> ModelSpec:
        return self.model.spec

    @property
    def mean(self) -> float:
        return float(self.metadata.get("normalization", {}).get("mean", 0.5))

    @property
    def std(self) -> float:
        return float(self.metadata.get("normalization", {}).get("std", 0.5))


def save_checkpoint(model: SplitClassifier, metadata: dict, path: Path, force: bool = False) -> Path:
    from safetensors.torch import save_file

    spec = model.spec
    doc = {
        "schema_version": SCHEMA_VERSION,
        "format": "sift-deploy-checkpoint",
        "arch": spec.arch,
        "in_channels": spec.in_channels,
        "num_classes": spec.num_classes,
        "input_size": spec.input_size,
        "split_point": model.split_point,
        "transmitted_shape": list(model.transmitted_shape()),
        "tool_version": __version__,
        **metadata,
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_file(Path(path), force=force) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(doc, sort_keys=True)})
    return Path(path)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw_meta = (f.metadata() or {}).get(METADATA_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise SiftError(f"{path} is not a readable safetensors checkpoint ({exc}); it may be truncated or corrupt") from exc
    if raw_meta is None:
        return tensors, None
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as exc:
        raise SiftError(f"{path} has corrupt sift-deploy metadata: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("schema_version") != SCHEMA_VERSION:
        raise SiftError(f"{path} has checkpoint schema_version {meta.get('schema_version') if isinstance(meta, dict) else '?'}; "
                        f"this sift-deploy reads version {SCHEMA_VERSION}")
    return tensors, meta


def _read_pickled_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the refusal is what counts
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", str(exc))
        if found:
            raise SiftError(f"refused {path}: unpickling it would import {found.group(1)}, and sift-deploy never runs code "
                            f"from a checkpoint; re-save it as a plain state_dict or as safetensors") from exc
        raise SiftError(f"{path} is not a readable PyTorch checkpoint: it is corrupt, or uses pickle features beyond plain "
                        f"tensors that sift-deploy does not run; re-save it as a plain state_dict or as safetensors") from exc
    except (EOFError, RuntimeError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SiftError(f"{path} is not a readable PyTorch checkpoint ({reason}); it may be truncated or corrupt") from exc
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SiftError(f"{path} holds no state_dict (expected a dict of tensors, or {{'model': state_dict, ...}})")
    return obj


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in ("_module.", "module."):
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def infer_spec(arch: str, state: dict[str, torch.Tensor], input_size: int | None = None) -> ModelSpec:
    """Read in_channels, num_classes and (if not given) the input size off the tensor shapes."""
    probe = build_model(ModelSpec(arch))
    conv_names = [n for n, m in probe.named_modules() if isinstance(m, torch.nn.Conv2d)]
    linear_names = [n for n, m in probe.named_modules() if isinstance(m, torch.nn.Linear)]
    first_conv, classifier = f"{conv_names[0]}.weight", f"{linear_names[-1]}.weight"
    if first_conv not in state or classifier not in state:
        raise SiftError(f"the state_dict does not look like a {arch} model (no {first_conv} or {classifier}); check --arch")
    in_channels = int(state[first_conv].shape[1])
    num_classes = int(state[classifier].shape[0])
    if input_size is None:
        for size in (32, 64):
            candidate = build_model(ModelSpec(arch, in_channels, num_classes, size))
            shapes = candidate.state_dict()
            if all(k not in shapes or shapes[k].shape == v.shape for k, v in state.items()):
                return candidate.spec
        raise SiftError(f"the weights fit {arch} at neither input size 32 nor 64; pass --input-size")
    return ModelSpec(arch, in_channels, num_classes, input_size)


def load_state_strict(model: SplitClassifier, state: dict[str, torch.Tensor], source: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if items:
                shown = ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
                parts.append(f"{label}: {shown}")
        raise SiftError(f"weights in {source} do not fit {model.spec.arch}: " + "; ".join(parts) +
                        "; check --arch (and --input-size)")
    model.load_state_dict(state, strict=True)
    for value in state.values():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise SiftError(f"weights in {source} contain NaN or infinite values; the checkpoint is unusable")


def protected_cut_warning(ckpt: Checkpoint) -> str | None:
    """A warning when the file name of an official checkpoint records a `block_idx` whose protected
    tensor feat[block_idx - 1] is not the output of the model's chosen cut."""
    found = OFFICIAL_NAME.match(ckpt.path.name)
    if not ckpt.official or found is None:
        return None
    block_idx = int(found.group(1))
    model = ckpt.model
    protected = next((s.name for s in model.stages if s.block_idx == block_idx), None)
    if protected == model.split_point:
        return None
    where = (f"cut {protected!r}" if protected is not None
             else f"a tensor sift-deploy has no {model.spec.arch} cut for")
    return (f"{ckpt.path.name} records block_idx {block_idx}: its training applied the privacy losses to "
            f"feat[{block_idx - 1}] ({where}), but the model is split at {model.split_point!r}, which that "
            f"training never protected" + (f"; pass --split-at {protected}" if protected is not None else ""))


def load_checkpoint(path: Path | None = None, arch: str | None = None, input_size: int | None = None,
                    split_at: str | None = None) -> Checkpoint:
    """Load a project (.safetensors) or official (.pth/.pt) checkpoint; `None` is the shipped reference.
    `split_at` names the cut (see `SplitClassifier.cuts`); by default the model's own (the funnel)."""
    path = Path(path) if path is not None else REFERENCE_CHECKPOINT
    if not path.exists():
        raise SiftError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise SiftError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise SiftError(f"checkpoint {path} is empty")
    if arch is not None and arch not in ARCHITECTURES:
        raise SiftError(f"unknown architecture {arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    with open(path, "rb") as f:
        head = f.read(8)
    # safetensors begins with a little-endian u64 header length; zip (torch.save) begins with PK, pickle with 0x80.
    # The suffix decides where it is a known one, so a corrupt .pth is reported as a PyTorch file.
    if path.suffix in SAFETENSORS_SUFFIXES or path.suffix in TORCH_SUFFIXES:
        is_safetensors = path.suffix in SAFETENSORS_SUFFIXES
    else:
        is_safetensors = head[:2] != b"PK" and head[:1] != b"\x80" and len(head) == 8
    notes: list[str] = []
    if is_safetensors:
        state, meta = _read_safetensors(path)
        if meta is None and arch is None:
            raise SiftError(f"{path} has no sift-deploy metadata; pass --arch to say which architecture it holds")
    else:
        state, meta = _read_pickled_state(path), None
        if arch is None:
            raise SiftError(f"{path} is an official-format checkpoint; pass --arch ({', '.join(sorted(ARCHITECTURES))})")
    official = meta is None
    state = strip_prefixes(state)
    if meta is not None:
        try:
            spec = ModelSpec(str(meta["arch"]), int(meta["in_channels"]), int(meta["num_classes"]), int(meta["input_size"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SiftError(f"{path} has incomplete sift-deploy metadata (arch, in_channels, num_classes and input_size "
                            f"are needed; problem with {exc}); re-save the checkpoint") from exc
        if arch is not None and arch != spec.arch:
            raise SiftError(f"{path} holds a {spec.arch} model, not {arch}; drop --arch (project checkpoints record it)")
        if input_size is not None and input_size != spec.input_size:
            raise SiftError(f"{path} was trained at input size {spec.input_size}, not {input_size}; drop --input-size")
    else:
        spec = infer_spec(arch, state, input_size)
        meta = {"arch": spec.arch, "in_channels": spec.in_channels, "num_classes": spec.num_classes,
                "input_size": spec.input_size, "normalization": {"mean": 0.5, "std": 0.5},
                "source_format": "official state_dict"}
        notes.append("official checkpoint: normalisation assumed mean 0.5 / std 0.5 (pass a project checkpoint to record it)")
    model = build_model(spec)
    load_state_strict(model, state, path)
    if split_at is not None:
        model = model.split_at(split_at)
    model.eval()
    ckpt = Checkpoint(model=model, metadata=meta, path=path, sha256=sha256_file(path), official=official, notes=notes)
    warning = protected_cut_warning(ckpt)
    if warning is not None:
        ckpt.warnings.append(warning)
    return ckpt
