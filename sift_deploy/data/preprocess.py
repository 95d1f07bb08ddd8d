"""The one place where stored images become model inputs.

1. `fit_to_size`: uint8 images of any side are brought to the model's input side. A side that is
   at most 4/32 smaller (28 -> 32, the classic MNIST padding) is zero-padded around the centre;
   then an integer factor (32 -> 64) repeats pixels (nearest neighbour); anything else is an error.
2. `to_unit`: uint8 -> float32 in [0, 1], the space in which reconstructions are scored.
3. `normalize`: (x - mean) / std per channel, what the model sees. Mean and std are recorded in
   every checkpoint and bundle, one value per channel (a single number, as older files hold, is the
   same for every channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from ..errors import SiftError

DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5

Channels = Union[float, Sequence[float]]

# Named normalisations. `cifar10` is what the official code uses for its RGB data sets (FaceScrub,
# CIFAR-10: transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))); `half` is its
# grey pipelines (chest X-ray, MNIST: 0.5 / 0.5), and what the shipped reference checkpoints use.
PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "facescrub": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "half": ((0.5,), (0.5,)),
}
# What the official training script normalises with, by input channels (project_infodr_v4.py).
OFFICIAL_PRESET = {1: "half", 3: "cifar10"}


def _values(value: object, what: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = (float(value),)
    elif isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0:
        try:
            values = tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
        except (TypeError, ValueError) as exc:
            raise SiftError(f"normalisation {what} {value!r} is not a list of numbers") from exc
    else:
        raise SiftError(f"normalisation {what} {value!r} is neither a number nor a list of numbers")
    if not all(np.isfinite(values)):
        raise SiftError(f"normalisation {what} {list(values)} holds a value that is not finite")
    return values


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std of (x - mean) / std, x in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, mean: object, std: object, channels: int | None = None) -> "Normalization":
        """From numbers or lists (one value: the same for every channel), checked against `channels`
        (None: as given, to be fitted to a model with `for_channels` once its channels are known)."""
        means, stds = _values(mean, "mean"), _values(std, "std")
        if channels is None:  # as given: fitted to the model's channels by for_channels
            if min(stds) <= 0:
                raise SiftError(f"normalisation std {list(stds)} must be positive")
            return cls(means, stds)
        out = []
        for what, values in (("mean", means), ("std", stds)):
            if len(values) == 1:
                values = values * channels
            if len(values) != channels:
                raise SiftError(f"normalisation {what} has {len(values)} values but the model takes {channels} "
                                f"channel{'s' if channels != 1 else ''}; give one value or one per channel")
            out.append(values)
        if min(out[1]) <= 0:
            raise SiftError(f"normalisation std {list(out[1])} must be positive")
        return cls(out[0], out[1])

    def for_channels(self, channels: int) -> "Normalization":
        return Normalization.of(list(self.mean), list(self.std), channels)

    @classmethod
    def from_record(cls, record: object, channels: int) -> "Normalization":
        """From a checkpoint's or manifest's `normalization` table; absent: 0.5 / 0.5."""
        if record is None:
            return cls.of(DEFAULT_MEAN, DEFAULT_STD, channels)
        if not isinstance(record, dict) or "mean" not in record or "std" not in record:
            raise SiftError(f"recorded normalisation {record!r} needs 'mean' and 'std'")
        return cls.of(record["mean"], record["std"], channels)

    @classmethod
    def preset(cls, name: str, channels: int) -> "Normalization":
        if name not in PRESETS:
            raise SiftError(f"unknown normalisation {name!r}; choose one of {', '.join(PRESETS)} or give --mean and --std")
        mean, std = PRESETS[name]
        if len(mean) not in (1, channels):
            raise SiftError(f"normalisation {name} is for {len(mean)}-channel images but the model takes {channels}")
        return cls.of(mean, std, channels)

    def as_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    def describe(self) -> str:
        def show(values: tuple[float, ...]) -> str:
            return f"{values[0]:g}" if len(set(values)) == 1 else "(" + ", ".join(f"{v:g}" for v in values) + ")"
        return f"mean {show(self.mean)} / std {show(self.std)}"


def parse_channels(text: str, what: str) -> tuple[float, ...]:
    """`--mean 0.4914,0.4822,0.4465` (commas or spaces) or `--mean 0.5`."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise SiftError(f"--{what} {text!r} is not a number or a comma-separated list of numbers") from None
    if not values:
        raise SiftError(f"--{what} is empty; give one number or one per channel")
    return values


def normalization_from_options(mean: str | None, std: str | None, preset: str | None,
                               channels: int | None = None) -> Normalization | None:
    """The normalisation given on the command line (--normalization NAME, or --mean with --std), if any."""
    if preset is not None and (mean is not None or std is not None):
        raise SiftError("pass either --normalization or --mean/--std, not both")
    if preset is not None:
        if preset not in PRESETS:
            raise SiftError(f"unknown normalisation {preset!r}; choose one of {', '.join(PRESETS)} or give --mean and --std")
        return Normalization.of(*PRESETS[preset], channels)
    if (mean is None) != (std is None):
        raise SiftError("pass --mean and --std together")
    if mean is None:
        return None
    return Normalization.of(parse_channels(mean, "mean"), parse_channels(std, "std"), channels)


def measure_normalization(images: np.ndarray, sample: int = 10000, seed: int = 0) -> Normalization:
    """Per-channel mean and std of uint8 images (N, C, H, W) in [0, 1], over up to `sample` images."""
    if len(images) > sample:
        images = images[np.sort(np.random.default_rng(seed).choice(len(images), sample, replace=False))]
    unit = images.astype(np.float64) / 255.0
    mean = unit.mean(axis=(0, 2, 3))
    std = unit.std(axis=(0, 2, 3))
    if std.min() <= 0:
        raise SiftError("the train images are constant in some channel; give --mean and --std")
    return Normalization(tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std))


def _broadcast(value: Channels, channels: int) -> np.ndarray:
    values = np.asarray(value, dtype=np.float32).reshape(-1)
    if values.size == 1:
        return values.reshape(())
    if values.size != channels:
        raise SiftError(f"normalisation has {values.size} values per channel but the images have {channels} channels")
    return values.reshape(1, -1, 1, 1)


def fit_to_size(images: np.ndarray, size: int) -> np.ndarray:
    side = images.shape[-1]
    if images.shape[-2] != side:
        raise SiftError(f"images are {images.shape[-2]}x{side}; only square images are supported")
    base = size
    while base > side and base % 2 == 0 and base // 2 >= side:
        base //= 2
    if side > base or base - side > base // 8:
        raise SiftError(f"images of side {side} cannot be fitted to the model's input side {size}; "
                        f"resize them to {size}x{size} first")
    if side < base:
        lo = (base - side) // 2
        pad = [(0, 0)] * (images.ndim - 2) + [(lo, base - side - lo), (lo, base - side - lo)]
        images = np.pad(images, pad)
    factor = size // base
    if factor > 1:
        images = images.repeat(factor, axis=-2).repeat(factor, axis=-1)
    return images


def to_unit(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def normalize(unit: np.ndarray, mean: Channels = DEFAULT_MEAN, std: Channels = DEFAULT_STD) -> np.ndarray:
    """(x - mean) / std; mean and std are numbers or one value per channel (axis 1 of NCHW)."""
    channels = unit.shape[1] if unit.ndim == 4 else 1
    return ((unit - _broadcast(mean, channels)) / _broadcast(std, channels)).astype(np.float32, copy=False)


def model_input(images: np.ndarray, size: int, mean: Channels = DEFAULT_MEAN, std: Channels = DEFAULT_STD) -> np.ndarray:
    """uint8 (N, C, h, w) -> normalised float32 (N, C, size, size)."""
    return normalize(to_unit(fit_to_size(images, size)), mean, std)
