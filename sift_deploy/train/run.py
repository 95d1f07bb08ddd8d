"""`sift-deploy train`: load data, train, evaluate on the test split, write checkpoint + metrics."""

from __future__ import annotations

import dataclasses
import json
import platform
import tempfile
from pathlib import Path
from typing import Callable

import torch

from ..checkpoint import save_checkpoint
from ..data.preprocess import Normalization, measure_normalization, model_input
from ..data.sources import load_dataset
from ..data.splits import DEFAULT_AUX_FRACTION, make_splits
from ..errors import SiftError
from ..fileio import atomic_file, check_writable
from ..models import ARCHITECTURES, TWINS, ModelSpec, build_model
from .loop import DEFENSE_WEIGHTS, Recipe, StepReport, evaluate, train_model
from .resume import run_identity, state_path_for


def metrics_path_for(output: Path) -> Path:
    return output.with_name(output.name.removesuffix(".safetensors") + ".metrics.json")


def run_training(
    recipe: Recipe,
    output: Path,
    data_dir: Path | None,
    input_size: int,
    split_seed: int,
    force: bool,
    on_step: Callable[[StepReport], None] | None = None,
    normalization: Normalization | None = None,
    aux_split: float = DEFAULT_AUX_FRACTION,
    test_split: float | None = None,
    resume: bool = False,
) -> dict:
    """Train and save. `normalization` None: mean and std measured per channel on the train split.
    A resumable state is kept beside the output at every epoch's end and removed once the checkpoint is
    written; `resume` continues from it."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise SiftError(f"the checkpoint path must end in .safetensors, got {output.name}")
    metrics_path = metrics_path_for(output)
    check_writable(output, force)
    check_writable(metrics_path, force)
    if recipe.arch not in ARCHITECTURES:
        raise SiftError(f"unknown architecture {recipe.arch!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    if recipe.defense not in DEFENSE_WEIGHTS:
        raise SiftError(f"unknown defense {recipe.defense!r}; use {', '.join(DEFENSE_WEIGHTS)}")
    if recipe.defense == "siftfunnel" and not recipe.arch.startswith("siftfunnel-"):
        raise SiftError(f"{recipe.arch} has no funnel; train it with --defense none (or nopeek) or pick a "
                        f"siftfunnel-* architecture")
    if recipe.defense == "nopeek" and recipe.arch.startswith("siftfunnel-"):
        raise SiftError(f"nopeek is a baseline for an architecture without a funnel; train {recipe.arch} with "
                        f"--defense siftfunnel, or NoPeek on its twin --arch {TWINS.get(recipe.arch, 'plain-cnn')}")
    data = load_dataset(data_dir)
    splits = make_splits(data, seed=split_seed, aux_fraction=aux_split, test_fraction=test_split)
    channels = int(splits.train.images.shape[1])
    num_classes = len(splits.class_names)
    spec = ModelSpec(recipe.arch, channels, num_classes, input_size)
    build_model(spec)  # validates the spec before minutes of training
    if normalization is None:
        norm, norm_source = measure_normalization(splits.train.images), "measured on the train split"
    else:
        norm, norm_source = normalization.for_channels(channels), "given"
    state_path = state_path_for(output)
    check_writable(state_path, force=True)
    identity = run_identity(recipe.as_dict(), dataclasses.asdict(spec), splits.info.as_dict(), norm.as_dict())
    model, stats = train_model(recipe, spec, splits.train, norm.mean, norm.std, on_step, state_path=state_path,
                               resume=resume, identity=identity)
    test_inputs = model_input(splits.test.images, input_size, norm.mean, norm.std)
    metrics = {
        "test_accuracy": round(evaluate(model, test_inputs, splits.test.labels), 5),
        "test_images": len(splits.test),
        **stats,
    }
    metadata = {
        "normalization": norm.as_dict(),
        "normalization_source": norm_source,
        "class_names": list(splits.class_names),
        "dataset": splits.info.as_dict(),
        "preprocessing": f"uint8 -> fit_to_size({input_size}) (centre zero-pad, integer nearest upscale) -> /255 -> (x-mean)/std",
        "training": {**recipe.as_dict(), "torch": torch.__version__, "python": platform.python_version()},
        "metrics": metrics,
    }
    try:
        _save(model, metadata, output, metrics_path, force)
    except (OSError, SiftError) as exc:  # the output went away or turned read-only during training
        rescued = _rescue(model, metadata, output)
        raise SiftError(f"could not write {output} ({exc}); the trained model was saved to {rescued} instead") from None
    state_path.unlink(missing_ok=True)
    return {"checkpoint": str(output), "metrics_file": str(metrics_path), "normalization": norm.as_dict(),
            "splits": splits.info.sizes, **metrics}


def _save(model, metadata: dict, output: Path, metrics_path: Path, force: bool) -> None:
    save_checkpoint(model, metadata, output, force=force)
    with atomic_file(metrics_path, force=force) as tmp:
        tmp.write_text(json.dumps({"checkpoint": str(output), **metadata["metrics"], "training": metadata["training"]},
                                  indent=2) + "\n")


def _rescue(model, metadata: dict, output: Path) -> Path:
    """Save the checkpoint and its metrics under a fresh name in the current folder, else in the
    temporary folder: minutes of training are never lost to an output that failed at the end."""
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            check_writable(folder / output.name, force=True)
            rescue = Path(tempfile.mkdtemp(prefix="sift-rescued-", dir=folder)) / output.name
            _save(model, metadata, rescue, metrics_path_for(rescue), force=False)
            return rescue
        except (OSError, SiftError):
            continue
    raise SiftError(f"could not write {output}, nor a copy in {Path.cwd()} or {tempfile.gettempdir()}; "
                    "the trained model is lost: free space or fix permissions and train again")
