"""Checkpoints: the project's safetensors format, and official `.pth` state_dicts.

Project format: one `.safetensors` file whose header metadata holds, under the key `sift_deploy`,
a JSON document (schema_version, architecture, sizes, normalisation, class names, dataset and
split seed, training recipe, final metrics, tool version). One file, so weights and metadata can
never drift apart.

Official format: `{'epoch', 'model': state_dict, 'best_cl_acc'}` (or a bare state_dict), loaded with
`torch.load(weights_only=True)`; `module.` / `_module.` prefixes (DataParallel, Opacus) are removed.
Nothing here ever unpickles code. Channels, classes, input size and width (`ndf`) are read off the
tensor shapes; the normalisation is not in the file, so it is given (`--mean/--std` or a preset) or
taken from the official training script for that channel count. `convert_official` writes such a
file as a project checkpoint that records all of it.
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
from .data.preprocess import OFFICIAL_PRESET, Normalization
from .models import ARCHITECTURES, DEFAULT_WIDTH, MIN_WIDTH, ModelSpec, SplitClassifier, build_model

SCHEMA_VERSION = 1
METADATA_KEY = "sift_deploy"
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE_CHECKPOINT = REFERENCE_DIR / "siftfunnel-cnn-fmnist.safetensors"
REFERENCE_TWIN = REFERENCE_DIR / "plain-cnn-fmnist.safetensors"
SAFETENSORS_SUFFIXES = {".safetensors"}
# The official training names its checkpoints {dataset}_{model}_{block_idx}_pv4_... (project_infodr_v4.py:L531).
OFFICIAL_NAME = re.compile(r"^[^_]+_[^_]+_(\d+)_pv4")
TORCH_SUFFIXES = {".pth", ".pt", ".ckpt", ".tar", ".bin", ".pkl"}
# The official class behind each architecture (the names users know from the official code).
OFFICIAL_CLASSES = {"siftfunnel-cnn": "pv4_classifier_4", "plain-cnn": "Classifier_4",
                    "siftfunnel-vgg16bn": "vgg16_bn_pv4", "plain-vgg16bn": "vgg16_bn",
                    "siftfunnel-resnet18": "rn18_pv4", "plain-resnet18": "rn18", "ae-cnn": "AE_Classifier_4"}
# Official classes whose head is 512 * (2 * (img_size // 64))^2 wide: zero at 32, so they only run at 64.
OFFICIAL_64_ONLY = {"siftfunnel-vgg16bn", "plain-vgg16bn", "siftfunnel-resnet18", "plain-resnet18"}


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
    def normalization(self) -> Normalization:
        """Per-channel mean and std (a scalar in older checkpoints is the same for every channel)."""
        return Normalization.from_record(self.metadata.get("normalization"), self.spec.in_channels)

    @property
    def mean(self) -> tuple[float, ...]:
        return self.normalization.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.normalization.std

    @property
    def dataset(self) -> dict:
        """The recorded data set and split (`{}` where none is recorded, e.g. official files)."""
        record = self.metadata.get("dataset")
        return record if isinstance(record, dict) else {}


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
        "width": spec.width,
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


def _read_pickled_state(path: Path, extras: dict | None = None) -> dict[str, torch.Tensor]:
    """The state_dict of an official file; `extras` receives its scalar entries (epoch, best_cl_acc)."""
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
    if isinstance(obj, dict) and extras is not None:
        extras.update({k: (v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v) for k, v in obj.items()
                       if isinstance(k, str) and (isinstance(v, (int, float, str)) or
                                                  (isinstance(v, torch.Tensor) and v.numel() == 1))})
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


def _fits(model: SplitClassifier, state: dict[str, torch.Tensor]) -> list[str]:
    """Keys of `state` whose shape differs from the model's (keys only one side has are not counted)."""
    shapes = model.state_dict()
    return [f"{k} {tuple(v.shape)} != {tuple(shapes[k].shape)}" for k, v in state.items()
            if k in shapes and shapes[k].shape != v.shape]


def infer_spec(arch: str, state: dict[str, torch.Tensor], input_size: int | None = None) -> ModelSpec:
    """Read in_channels, num_classes, the width (`ndf`) and (if not given) the input size off the tensor shapes."""
    official = OFFICIAL_CLASSES.get(arch, arch)
    probe = build_model(ModelSpec(arch))
    conv_names = [n for n, m in probe.named_modules() if isinstance(m, torch.nn.Conv2d)]
    linear_names = [n for n, m in probe.named_modules() if isinstance(m, torch.nn.Linear)]
    first_conv, classifier = f"{conv_names[0]}.weight", f"{linear_names[-1]}.weight"
    if first_conv not in state or classifier not in state:
        raise SiftError(f"the state_dict does not look like a {arch} model (official {official}: no {first_conv} or "
                        f"{classifier}); check --arch")
    in_channels = int(state[first_conv].shape[1])
    num_classes = int(state[classifier].shape[0])
    width = int(state[first_conv].shape[0]) if arch in MIN_WIDTH else DEFAULT_WIDTH
    zero_head = any(v.ndim == 2 and 0 in v.shape for v in state.values())
    sizes = (input_size,) if input_size is not None else (32, 64)
    misfits: dict[int, list[str]] = {}
    for size in sizes:
        candidate = build_model(ModelSpec(arch, in_channels, num_classes, size, width))
        misfits[size] = _fits(candidate, state)
        if not misfits[size]:
            return candidate.spec
    if arch in OFFICIAL_64_ONLY and (zero_head or input_size == 32):
        found = "these weights hold that zero-width head" if zero_head else "official weights are made at 64x64"
        raise SiftError(f"the official {official} cannot run at input size 32: its head is 512*(2*(32//64))^2 = 0 "
                        f"features wide, so it only works at 64 ({found}); use 64x64 weights"
                        + (" and drop --input-size" if input_size == 32 and not zero_head else ""))
    if input_size is not None:
        other = 64 if input_size == 32 else 32
        if not _fits(build_model(ModelSpec(arch, in_channels, num_classes, other, width)), state):
            raise SiftError(f"the weights are a {arch} for input size {other}, not {input_size}; "
                            f"pass --input-size {other} or leave it out")
    # Nothing fits: build the last candidate anyway; the strict load lists every key that differs.
    return ModelSpec(arch, in_channels, num_classes, sizes[-1], width)


def load_state_strict(model: SplitClassifier, state: dict[str, torch.Tensor], source: Path,
                      advice: str = "check --arch") -> None:
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
        raise SiftError(f"weights in {source} do not fit {model.spec.arch}: " + "; ".join(parts) + f"; {advice}")
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
                    normalization: Normalization | None = None, split_at: str | None = None) -> Checkpoint:
    """Load a project (.safetensors) or official (.pth/.pt) checkpoint; `None` is the shipped reference.

    `normalization` is the input normalisation of an official file (which does not record one); a project
    checkpoint records its own and refuses another. `split_at` names the cut (see `SplitClassifier.cuts`);
    by default the model's own (the funnel)."""
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
    extras: dict = {}
    if is_safetensors:
        state, meta = _read_safetensors(path)
        if meta is None and arch is None:
            raise SiftError(f"{path} has no sift-deploy metadata; pass --arch to say which architecture it holds")
    else:
        state, meta = _read_pickled_state(path, extras), None
        if arch is None:
            raise SiftError(f"{path} is an official-format checkpoint; pass --arch ({', '.join(sorted(ARCHITECTURES))})")
    official = meta is None
    state = strip_prefixes(state)
    advice = "check --arch"
    if meta is not None:
        try:
            spec = ModelSpec(str(meta["arch"]), int(meta["in_channels"]), int(meta["num_classes"]), int(meta["input_size"]),
                             int(meta.get("width", DEFAULT_WIDTH)))
        except (KeyError, TypeError, ValueError) as exc:
            raise SiftError(f"{path} has incomplete sift-deploy metadata (arch, in_channels, num_classes and input_size "
                            f"are needed; problem with {exc}); re-save the checkpoint") from exc
        if arch is not None and arch != spec.arch:
            raise SiftError(f"{path} holds a {spec.arch} model, not {arch}; drop --arch (project checkpoints record it)")
        if input_size is not None and input_size != spec.input_size:
            raise SiftError(f"{path} was trained at input size {spec.input_size}, not {input_size}; drop --input-size")
        recorded = Normalization.from_record(meta.get("normalization"), spec.in_channels)
        if normalization is not None and normalization.for_channels(spec.in_channels) != recorded:
            raise SiftError(f"{path} records its normalisation ({recorded.describe()}), not {normalization.describe()}; "
                            f"drop --mean/--std/--normalization")
        advice = "its metadata and weights disagree; re-save the checkpoint"
    else:
        spec = infer_spec(arch, state, input_size)
        width_note = f", width {spec.width}" if spec.arch in MIN_WIDTH else ""
        advice = (f"they are not an official {OFFICIAL_CLASSES.get(spec.arch, spec.arch)} ({spec.in_channels} channels, "
                  f"{spec.num_classes} classes{width_note}, input size {spec.input_size}); check --arch")
        if normalization is not None:
            normalization = normalization.for_channels(spec.in_channels)
        else:
            preset = OFFICIAL_PRESET.get(spec.in_channels, "half")
            normalization = Normalization.preset(preset, spec.in_channels)
            notes.append(f"official checkpoint: normalisation assumed {normalization.describe()} (the official training "
                         f"script's for {spec.in_channels}-channel input); pass --mean/--std or --normalization if it "
                         f"was trained otherwise")
        meta = {"arch": spec.arch, "in_channels": spec.in_channels, "num_classes": spec.num_classes,
                "input_size": spec.input_size, "width": spec.width, "normalization": normalization.as_dict(),
                "source_format": "official state_dict",
                "official": {"class": OFFICIAL_CLASSES.get(spec.arch, spec.arch),
                             **{k: v for k, v in extras.items() if k in ("epoch", "best_cl_acc")}}}
    model = build_model(spec)
    load_state_strict(model, state, path, advice)
    if split_at is not None:
        model = model.split_at(split_at)
    model.eval()
    ckpt = Checkpoint(model=model, metadata=meta, path=path, sha256=sha256_file(path), official=official, notes=notes)
    warning = protected_cut_warning(ckpt)
    if warning is not None:
        ckpt.warnings.append(warning)
    return ckpt


def convert_official(source: Path, arch: str, output: Path, normalization: Normalization | None = None,
                     input_size: int | None = None, force: bool = False) -> Checkpoint:
    """An official `.pth` -> a project checkpoint recording architecture, sizes, width and normalisation."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise SiftError(f"the converted checkpoint must end in .safetensors, got {output.name}")
    if arch is None:
        raise SiftError("pass --arch to say which architecture the official file holds "
                        f"({', '.join(sorted(ARCHITECTURES))})")
    ckpt = load_checkpoint(source, arch=arch, input_size=input_size, normalization=normalization)
    if not ckpt.official:
        raise SiftError(f"{source} is already a sift-deploy checkpoint; convert reads official-format files")
    metadata = {
        "normalization": ckpt.normalization.as_dict(),
        "normalization_source": "given" if normalization is not None else "assumed: " + ckpt.notes[0],
        "class_names": [str(i) for i in range(ckpt.spec.num_classes)],
        "source_format": "official state_dict",
        "converted_from": {"path": str(source), "sha256": ckpt.sha256, **ckpt.metadata["official"]},
    }
    save_checkpoint(ckpt.model, metadata, output, force=force)
    return load_checkpoint(output)
