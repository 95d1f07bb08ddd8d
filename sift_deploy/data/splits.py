"""Deterministic, disjoint splits: `train` (the model owner's), `aux` (the attacker's auxiliary
data), `test` (private evaluation). Calibration samples are drawn from `train` only.

If the source has its own test set it is `test`; `aux` is carved from the source's training set
(`aux_fraction`, default 1/6: Fashion-MNIST's 60,000 -> 50,000 train + 10,000 aux). A source with
its own aux set keeps it. A source with only one set is cut into all three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import SiftError
from .sources import Dataset

DEFAULT_SPLIT_SEED = 0
DEFAULT_AUX_FRACTION = 1 / 6


@dataclass
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class SplitInfo:
    seed: int
    aux_fraction: float
    sizes: dict
    source: str
    dataset: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Splits:
    train: Split
    aux: Split
    test: Split
    info: SplitInfo
    class_names: tuple[str, ...]


def make_splits(data: Dataset, seed: int = DEFAULT_SPLIT_SEED, aux_fraction: float = DEFAULT_AUX_FRACTION) -> Splits:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.train_labels))
    train_x, train_y = data.train_images[order], data.train_labels[order]
    if data.test_images is not None:
        test = Split(data.test_images, data.test_labels)
    else:
        n_test = int(round(len(order) * aux_fraction))
        test = Split(train_x[:n_test], train_y[:n_test])
        train_x, train_y = train_x[n_test:], train_y[n_test:]
    if data.aux_images is not None:
        aux = Split(data.aux_images, data.aux_labels)
    else:
        n_aux = int(round(len(train_y) * aux_fraction))
        aux = Split(train_x[:n_aux], train_y[:n_aux])
        train_x, train_y = train_x[n_aux:], train_y[n_aux:]
    train = Split(train_x, train_y)
    if min(len(train), len(aux), len(test)) == 0:
        raise SiftError(f"{data.source} is too small to give non-empty train, aux and test splits")
    info = SplitInfo(seed=seed, aux_fraction=aux_fraction, source=data.source, dataset=data.name,
                     sizes={"train": len(train), "aux": len(aux), "test": len(test)})
    return Splits(train, aux, test, info, data.class_names)


def calibration_indices(n_train: int, count: int, seed: int) -> np.ndarray:
    """Which train images make up a calibration set of `count` images (sorted, without repeats)."""
    if count > n_train:
        raise SiftError(f"asked for {count} calibration images but the train split has {n_train}")
    return np.sort(np.random.default_rng(seed).choice(n_train, size=count, replace=False))
