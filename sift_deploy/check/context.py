"""What every check stage shares, built once per check: the intact bundle, the float checkpoint and
its unprotected twin, the data splits, the images the attacks use and the features of each side.

Opening a context resolves and validates everything cheap (so bad input fails before any attack
runs); images and features are computed on first use and cached, so a stage run alone computes only
what it needs. Every model run goes through a runner: the bundle's own runtime (or its labelled
stand-in) for the deployed side, the torch runner for the float and twin edges and clouds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np

from ..backends import open_runner
from ..backends.base import run_in_batches
from ..backends.torch.runner import torch_outputs
from ..bundle import require_intact
from ..checkpoint import REFERENCE_CHECKPOINT, REFERENCE_TWIN, TORCH_SUFFIXES, Checkpoint, load_checkpoint
from ..data.preprocess import Normalization, fit_to_size, normalize, to_unit
from ..data.sources import FASHION_MNIST, load_dataset
from ..data.splits import Splits, check_split_size, make_splits, split_settings
from ..errors import SiftError
from ..models import TWINS
from ..perturbation import from_manifest, perturb

Progress = Callable[[str, int, int], None]
DEPLOYED_BATCH = 256
GRID_IMAGES = 12  # images per row of the reconstruction grid
PERTURBATION_SEED = 20250102  # the draws of a bundle's perturbation of z, the same on the float and deployed side


def no_progress(stage: str, done: int, total: int) -> None:
    return None


def resolve_checkpoint(manifest: dict, checkpoint: Path | None, normalization: Normalization | None = None) -> Checkpoint:
    """The float checkpoint the bundle was exported from (matched by sha256), split at the bundle's cut.

    An official-format file records neither its input size nor its normalisation: both come from the
    bundle, which recorded what export used (a --mean/--std/--normalization given here must agree)."""
    recorded = manifest["source_checkpoint"]
    model = manifest["model"]
    official = bool(recorded.get("official_format"))
    if official:
        exported = Normalization.from_record(manifest["input"]["normalization"], int(model["in_channels"]))
        if normalization is not None and normalization.for_channels(int(model["in_channels"])) != exported:
            raise SiftError(f"the bundle was exported with normalisation {exported.describe()}, not "
                            f"{normalization.describe()}; drop --mean/--std/--normalization")
        normalization = exported
    candidates = [Path(checkpoint)] if checkpoint is not None else [Path(recorded["path"]), REFERENCE_CHECKPOINT]
    for path in candidates:
        if path.is_file():
            try:
                ckpt = load_checkpoint(path, arch=model["arch"] if official else None,
                                       input_size=int(model["input_size"]) if official else None,
                                       normalization=normalization,
                                       split_at=model["split_point"])
            except SiftError as exc:
                if checkpoint is None:
                    continue
                reason = without_options_check_lacks(str(exc))
                raise SiftError(f"{path} is not the checkpoint this bundle was exported from ({reason}); pass the "
                                f"original with --checkpoint") from exc
            if ckpt.sha256 == recorded["sha256"]:
                return ckpt
            if checkpoint is not None:
                raise SiftError(f"{path} is not the checkpoint this bundle was exported from (sha256 differs); "
                                f"pass the original with --checkpoint")
    raise SiftError(f"the float checkpoint of this bundle ({recorded['path']}) is not here; pass it with --checkpoint")


def without_options_check_lacks(message: str) -> str:
    """A checkpoint error without its advice to pass --arch or --input-size: check takes both from the bundle."""
    return re.split(r"; check --arch|; pass --input-size|; drop --input-size| and drop --input-size", message)[0]


def resolve_twin(ckpt: Checkpoint, twin: Path | None) -> tuple[Checkpoint, str]:
    """The unprotected twin the attack-strength bound attacks, and where it came from (for the report).
    An official-format twin is read as the checked model's twin architecture, size and normalisation."""
    if twin is not None:
        if Path(twin).suffix in TORCH_SUFFIXES:
            arch = TWINS.get(ckpt.spec.arch, ckpt.spec.arch)
            return load_checkpoint(twin, arch=arch, input_size=ckpt.spec.input_size,
                                   normalization=ckpt.normalization), str(twin)
        return load_checkpoint(twin), str(twin)
    arch = ckpt.spec.arch
    if arch.startswith("plain-"):
        return ckpt, "the checked model itself (it is unprotected)"
    if TWINS.get(arch) == "plain-cnn" and REFERENCE_TWIN.is_file() and ckpt.path == REFERENCE_CHECKPOINT:
        return load_checkpoint(REFERENCE_TWIN), str(REFERENCE_TWIN)
    raise SiftError(f"no unprotected twin is known for {ckpt.path}; train one with `sift-deploy train --arch "
                    f"{TWINS.get(arch, 'plain-cnn')} --defense none` and pass it with --twin")


def check_data(ckpt: Checkpoint, twin: Checkpoint, data_dir: Path | None, aux_split: float | None
               ) -> tuple[Splits, list[str]]:
    """The splits the check attacks, cut with the seed and sizes the checkpoint records (--aux-split may enlarge
    the attacker's share; the test split stays the recorded one), and warnings. Refuses the default
    Fashion-MNIST for a checkpoint trained on another data set, and data of another class count."""
    warnings: list[str] = []
    recorded = ckpt.dataset
    settings = split_settings(recorded)
    if aux_split is not None:
        settings["aux_fraction"] = check_split_size(aux_split, "aux-split")
    trained_on = recorded.get("dataset")
    if data_dir is None and trained_on is not None and trained_on != FASHION_MNIST:
        raise SiftError(f"{ckpt.path.name} was trained on {trained_on} ({recorded.get('source')}), but without "
                        f"--data-dir check attacks Fashion-MNIST; pass --data-dir {recorded.get('source')}")
    splits = make_splits(load_dataset(data_dir), **settings)
    name, source = splits.info.dataset, splits.info.source
    if trained_on is None:
        warnings.append(f"{ckpt.path.name} records no data set; the check uses {name} ({source})")
    elif trained_on != name:
        warnings.append(f"the data given holds {name} ({source}), but {ckpt.path.name} was trained on {trained_on} "
                        f"({recorded.get('source')}); the check attacks the data given")
    spec = ckpt.spec
    if splits.train.images.shape[1] != spec.in_channels:
        raise SiftError(f"the data has {splits.train.images.shape[1]} channels but the model takes {spec.in_channels}")
    classes = len(splits.class_names)
    for label, model in (("model", ckpt), ("unprotected twin", twin)):
        if model.spec.num_classes != classes:
            raise SiftError(f"the {label} has {model.spec.num_classes} classes but {name} ({source}) has {classes}; "
                            f"check it on the data set it was trained on (--data-dir)")
    return splits, warnings


class Side:
    """Features of one model or artifact on the attacker's aux images and on the whole test split.

    Features are taken on the whole test split and sliced (not on the first images only) so that
    every stage sees the numbers of one batched pass, whichever stage asked first.
    """

    def __init__(self, label: str, extract: Callable[[str], np.ndarray], test_images: int):
        self.label = label
        self._extract = extract  # "aux" | "all_test" -> features
        self.test_images = test_images

    @cached_property
    def z_aux(self) -> np.ndarray:
        return self._extract("aux")

    @cached_property
    def z_all_test(self) -> np.ndarray:
        return self._extract("all_test")

    @property
    def z_test(self) -> np.ndarray:
        return self.z_all_test[:self.test_images]


@dataclass
class CheckContext:
    bundle: Path
    manifest: dict
    checkpoint: Checkpoint
    twin_checkpoint: Checkpoint
    twin_source: str
    splits: Splits
    aux_count: int  # aux images the attacker trains on (the first ones of the aux split)
    test_count: int  # private test images attacked and scored (the first ones of the test split)
    progress: Progress = no_progress
    warnings: tuple[str, ...] = ()  # about the data (another data set than the checkpoint's, none recorded)
    budget_cuts: tuple[str, ...] = ()  # where the data could not give the budget (set by the gate)

    @classmethod
    def open(cls, bundle: Path, aux_images: int, test_images: int, data_dir: Path | None = None,
             checkpoint: Path | None = None, twin: Path | None = None, progress: Progress | None = None,
             normalization: Normalization | None = None, aux_split: float | None = None,
             twin_required: bool = True) -> "CheckContext":
        """`twin_required=False` (for callers that run no twin stage, such as advise): without a known twin
        the checkpoint itself stands in the twin slot."""
        bundle = Path(bundle)
        manifest = require_intact(bundle)
        ckpt = resolve_checkpoint(manifest, checkpoint, normalization)
        try:
            twin_ckpt, twin_source = resolve_twin(ckpt, twin)
        except SiftError:
            if twin_required:
                raise
            twin_ckpt, twin_source = ckpt, "none (no twin stage runs)"
        spec = ckpt.spec
        if twin_ckpt.spec.input_size != spec.input_size or twin_ckpt.spec.in_channels != spec.in_channels:
            raise SiftError("the twin checkpoint takes other inputs than the checked model; pass a matching --twin")
        splits, warnings = check_data(ckpt, twin_ckpt, data_dir, aux_split)
        return cls(bundle, manifest, ckpt, twin_ckpt, twin_source, splits, min(aux_images, len(splits.aux)),
                   min(test_images, len(splits.test)), progress or no_progress, tuple(warnings))

    # ------------------------------------------------------------------ images in [0, 1] at the model's size

    def _unit(self, images: np.ndarray) -> np.ndarray:
        return to_unit(fit_to_size(images, self.checkpoint.spec.input_size))

    @cached_property
    def x_aux(self) -> np.ndarray:
        return self._unit(self.splits.aux.images[:self.aux_count])

    @cached_property
    def x_all_test(self) -> np.ndarray:
        return self._unit(self.splits.test.images)

    @property
    def x_test(self) -> np.ndarray:
        return self.x_all_test[:self.test_count]

    @property
    def aux_labels(self) -> np.ndarray:
        return self.splits.aux.labels[:self.aux_count]

    @property
    def test_labels(self) -> np.ndarray:
        """Labels of the whole test split (accuracy is measured on all of it)."""
        return self.splits.test.labels

    def _images(self, which: str) -> np.ndarray:
        return {"aux": self.x_aux, "all_test": self.x_all_test}[which]

    # ------------------------------------------------------------------ the three sides

    def _tracked(self, label: str, extract: Callable[[str], np.ndarray]) -> Callable[[str], np.ndarray]:
        done = []

        def run(which: str) -> np.ndarray:
            self.progress(f"{label} features", len(done), 2)
            z = extract(which)
            done.append(which)
            self.progress(f"{label} features", len(done), 2)
            return z

        return run

    def _as_sent(self, which: str, z: np.ndarray) -> np.ndarray:
        """z as the sender puts it on the wire: with the bundle's perturbation, if it has one."""
        rng = np.random.default_rng([PERTURBATION_SEED, {"aux": 0, "all_test": 1}[which]])
        return perturb(z, from_manifest(self.manifest), rng)

    @cached_property
    def float_side(self) -> Side:
        ckpt = self.checkpoint
        return Side("float", self._tracked("float", lambda which: self._as_sent(which, torch_outputs(
            ckpt.model.edge, normalize(self._images(which), ckpt.mean, ckpt.std)))), self.test_count)

    @cached_property
    def twin_side(self) -> Side:
        """The unprotected twin's edge, fed with the twin's own normalisation."""
        twin = self.twin_checkpoint
        return Side("twin", self._tracked("twin", lambda which: torch_outputs(
            twin.model.edge, normalize(self._images(which), twin.mean, twin.std))), self.test_count)

    @cached_property
    def deployed_side(self) -> Side:
        ckpt = self.checkpoint

        def extract(which: str) -> np.ndarray:
            with self.deployed_runner() as runner:
                z = run_in_batches(runner.infer, normalize(self._images(which), ckpt.mean, ckpt.std), DEPLOYED_BATCH)
            return self._as_sent(which, z)

        return Side("deployed", self._tracked("deployed", extract), self.test_count)

    def deployed_runner(self):
        """The bundle's own runtime, or its labelled stand-in where that runtime is not available here."""
        return open_runner(self.bundle, self.manifest, threads=self.manifest["profile"]["threads"], fallback=True)

    @cached_property
    def runtime_label(self) -> str:
        runner = self.deployed_runner()
        label = runner.name if runner.kind == "native" else f"{runner.name} ({runner.label})"
        perturbation = from_manifest(self.manifest)
        return label if perturbation is None else f"{label}, z perturbed before the wire: {perturbation.describe()}"

    # ------------------------------------------------------------------ the reconstruction grid

    @cached_property
    def reconstructions(self) -> dict[str, np.ndarray]:
        """Rows of the reconstruction grid (originals first), in the order the stages add them."""
        return {"original": self.x_test[:GRID_IMAGES]}

    def add_reconstructions(self, label: str, images: np.ndarray) -> None:
        self.reconstructions[label] = images[:GRID_IMAGES]
