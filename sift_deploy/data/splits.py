"""Deterministic, disjoint splits: `train` (the model owner's), `aux` (the attacker's auxiliary
data), `test` (private evaluation). Calibration samples are drawn from `train` only.

If the source has its own test set it is `test`; `aux` is carved from the source's training set
(`aux_fraction`, default 1/6: Fashion-MNIST's 60,000 -> 50,000 train + 10,000 aux). A source with
its own aux set keeps it. A source with only one set (an image folder) is cut into all three:
`test_fraction` first (default: the same as `aux_fraction`), then `aux_fraction` of the rest.

Both sizes are options (`--aux-split`, `--test-split`): a value below 1 is a fraction, a whole number
of at least 1 a count of images. Training records the seed and sizes in the checkpoint;
`split_settings` reads them back, so export and check cut exactly the same splits.
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
    test_fraction: float | None = None  # None: the source has its own test set

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["test_fraction"] is None:
            d.pop("test_fraction")
        return d


def check_split_size(value: float, what: str) -> float:
    """A fraction in (0, 1) or a whole count >= 1."""
    value = float(value)
    if not (0 < value < 1 or (value >= 1 and value == int(value))):
        raise SiftError(f"--{what} {value:g} is neither a fraction between 0 and 1 nor a whole number of images")
    return value


def _take(total: int, size: float, what: str) -> int:
    n = int(round(total * size)) if size < 1 else int(size)
    if n >= total:
        raise SiftError(f"--{what} {size:g} asks for {n} images but only {total} are there to cut it from")
    return n


def split_settings(dataset_record: dict | None) -> dict:
    """seed / aux_fraction / test_fraction as recorded in a checkpoint (defaults where absent)."""
    record = dataset_record if isinstance(dataset_record, dict) else {}
    aux = float(record.get("aux_fraction", DEFAULT_AUX_FRACTION))
    return {"seed": int(record.get("seed", DEFAULT_SPLIT_SEED)), "aux_fraction": aux,
            "test_fraction": float(record.get("test_fraction", aux))}


@dataclass
class Splits:
    train: Split
    aux: Split
    test: Split
    info: SplitInfo
    class_names: tuple[str, ...]


def make_splits(data: Dataset, seed: int = DEFAULT_SPLIT_SEED, aux_fraction: float = DEFAULT_AUX_FRACTION,
                test_fraction: float | None = None) -> Splits:
    aux_fraction = check_split_size(aux_fraction, "aux-split")
    test_fraction = aux_fraction if test_fraction is None else check_split_size(test_fraction, "test-split")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data.train_labels))
    train_x, train_y = data.train_images[order], data.train_labels[order]
    if data.test_images is not None:
        test = Split(data.test_images, data.test_labels)
        test_fraction = None
    else:
        n_test = _take(len(order), test_fraction, "test-split")
        test = Split(train_x[:n_test], train_y[:n_test])
        train_x, train_y = train_x[n_test:], train_y[n_test:]
    if data.aux_images is not None:
        aux = Split(data.aux_images, data.aux_labels)
    else:
        n_aux = _take(len(train_y), aux_fraction, "aux-split")
        aux = Split(train_x[:n_aux], train_y[:n_aux])
        train_x, train_y = train_x[n_aux:], train_y[n_aux:]
    train = Split(train_x, train_y)
    if min(len(train), len(aux), len(test)) == 0:
        raise SiftError(f"{data.source} is too small to give non-empty train, aux and test splits")
    info = SplitInfo(seed=seed, aux_fraction=aux_fraction, source=data.source, dataset=data.name,
                     sizes={"train": len(train), "aux": len(aux), "test": len(test)}, test_fraction=test_fraction)
    return Splits(train, aux, test, info, data.class_names)


def calibration_indices(n_train: int, count: int, seed: int) -> np.ndarray:
    """Which train images make up a calibration set of `count` images (sorted, without repeats)."""
    if count > n_train:
        raise SiftError(f"asked for {count} calibration images but the train split has {n_train}")
    return np.sort(np.random.default_rng(seed).choice(n_train, size=count, replace=False))
