"""The one place where stored images become model inputs.

1. `fit_to_size`: uint8 images of any side are brought to the model's input side. A side that is
   at most 4/32 smaller (28 -> 32, the classic MNIST padding) is zero-padded around the centre;
   then an integer factor (32 -> 64) repeats pixels (nearest neighbour); anything else is an error.
2. `to_unit`: uint8 -> float32 in [0, 1], the space in which reconstructions are scored.
3. `normalize`: (x - mean) / std, what the model sees. Mean and std are recorded in every checkpoint.
"""

from __future__ import annotations

import numpy as np

from ..errors import SiftError

DEFAULT_MEAN = 0.5
DEFAULT_STD = 0.5


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


def normalize(unit: np.ndarray, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD) -> np.ndarray:
    return (unit - np.float32(mean)) / np.float32(std)


def model_input(images: np.ndarray, size: int, mean: float = DEFAULT_MEAN, std: float = DEFAULT_STD) -> np.ndarray:
    """uint8 (N, C, h, w) -> normalised float32 (N, C, size, size)."""
    return normalize(to_unit(fit_to_size(images, size)), mean, std)
