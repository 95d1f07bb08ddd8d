"""Shared pieces of the privacy tools: the progress report, seeded torch scopes, input checks.

Every privacy tool takes numpy arrays (or anything `np.asarray` accepts, torch tensors included)
and never cares which runtime produced the features.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..errors import SiftError


@dataclass
class ProgressReport:
    """One step of a long privacy computation, for a progress bar.

    `task` names the computation ("decoder", "mine", "whitebox"), `step` counts from 1 to `total`,
    `info` carries what is worth showing (loss, epoch, ...)."""

    task: str
    step: int
    total: int
    info: dict[str, float] = field(default_factory=dict)


OnStep = Callable[[ProgressReport], None]


@contextlib.contextmanager
def torch_seed(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block only; the caller's random state is restored after."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


def as_float_array(values: object, name: str) -> np.ndarray:
    """A float32 numpy copy of `values` (numpy or torch), with finite entries."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise SiftError(f"{name} has dtype {array.dtype}; expected numbers")
    array = np.require(array, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])
    if array.size and not np.isfinite(array).all():
        raise SiftError(f"{name} contains NaN or infinite values")
    return array


def as_images(values: object, name: str) -> np.ndarray:
    """Images as float32 (N, C, S, S) in [0, 1]; (N, S, S) is read as one channel."""
    images = as_float_array(values, name)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise SiftError(f"{name} has shape {images.shape}; expected (N, C, H, W) with C 1 or 3")
    if images.size and (images.min() < 0.0 or images.max() > 1.0):
        raise SiftError(f"{name} must lie in [0, 1] (the unnormalised image); got values in "
                        f"[{images.min():.3g}, {images.max():.3g}]")
    return images


def as_features(values: object, name: str) -> np.ndarray:
    """Features as float32 (N, C, h, w); flat (N, D) features become (N, D, 1, 1)."""
    feats = as_float_array(values, name)
    if feats.ndim == 2:
        feats = feats[:, :, None, None]
    if feats.ndim == 3:
        feats = feats[:, None]
    if feats.ndim != 4:
        raise SiftError(f"{name} has shape {feats.shape}; expected (N, C, h, w) or (N, D)")
    return feats


def check_pairs(a: np.ndarray, b: np.ndarray, names: str, minimum: int = 2) -> None:
    if len(a) != len(b):
        raise SiftError(f"{names} hold different numbers of samples ({len(a)} and {len(b)}); pair them one to one")
    if len(a) < minimum:
        raise SiftError(f"{names} hold {len(a)} samples; at least {minimum} are needed")
