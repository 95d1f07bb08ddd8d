"""Dataset readers: IDX folders (Fashion-MNIST, MNIST), the official code's .npz layout, and image
folders with one sub-folder per class. Every reader returns uint8 images (N, C, H, W) and int labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SiftError
from .idx import read_idx

DEFAULT_DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST = "fashion-mnist"  # the name splits and checkpoints record for it
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
INSTALL_HINT = "install it with `sudo apt-get install dataset-fashion-mnist` or pass --data-dir"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W). `test` is None when the source has no separate test set."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    class_names: tuple[str, ...]
    source: str
    aux_images: np.ndarray | None = None
    aux_labels: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    alt = stem.replace("-idx", ".idx")  # MNIST mirrors name them train-images.idx3-ubyte
    for candidate in (folder / f"{alt}.gz", folder / alt):
        if candidate.exists():
            return candidate
    return None


def _as_nchw(images: np.ndarray, path: object) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise SiftError(f"images in {path} have shape {images.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3")
    if images.dtype != np.uint8:
        if images.dtype.kind == "f" and np.nanmax(images) <= 1.0:
            images = images * 255.0
        if not np.isfinite(images).all():
            raise SiftError(f"images in {path} contain NaN or infinite values")
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(images)


def load_idx_folder(folder: Path) -> Dataset:
    names = {key: _find(folder, stem) for key, stem in {
        "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
        "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
    }.items()}
    missing = [k for k, v in names.items() if v is None]
    if missing:
        raise SiftError(f"{folder} lacks the IDX files for {', '.join(missing)}")
    train_x, train_y = read_idx(names["train_x"]), read_idx(names["train_y"]).astype(np.int64)
    test_x, test_y = read_idx(names["test_x"]), read_idx(names["test_y"]).astype(np.int64)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise SiftError(f"image and label counts differ in {folder}")
    is_fashion = "fashion" in str(folder).lower()
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    classes = FASHION_MNIST_CLASSES if is_fashion and n_classes == 10 else tuple(str(i) for i in range(n_classes))
    return Dataset(
        name=FASHION_MNIST if is_fashion else folder.name or "idx",
        train_images=_as_nchw(train_x, folder), train_labels=train_y,
        test_images=_as_nchw(test_x, folder), test_labels=test_y,
        class_names=classes, source=str(folder),
    )


def load_npz(path: Path) -> Dataset:
    """The official code's layout: arrays x_train/y_train, x_test/y_test and optionally x_aux/y_aux
    (also accepted: train_data/train_labels, test_data/test_labels, auxiliary_data/auxiliary_labels)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SiftError(f"cannot read {path} as a numpy .npz without pickles: {exc}") from exc

    def pick(*keys: str) -> np.ndarray | None:
        for key in keys:
            if key in archive.files:
                return archive[key]
        return None

    train_x, train_y = pick("x_train", "train_data", "train_images"), pick("y_train", "train_labels")
    if train_x is None or train_y is None:
        raise SiftError(f"{path} has arrays {archive.files}; it needs x_train and y_train (or train_data and train_labels)")
    test_x, test_y = pick("x_test", "test_data", "test_images"), pick("y_test", "test_labels")
    aux_x, aux_y = pick("x_aux", "auxiliary_data", "aux_data"), pick("y_aux", "auxiliary_labels", "aux_labels")
    labels = [a for a in (train_y, test_y, aux_y) if a is not None]
    n_classes = int(max(int(np.max(a)) for a in labels)) + 1
    return Dataset(
        name=path.stem, train_images=_as_nchw(train_x, path), train_labels=train_y.astype(np.int64).reshape(-1),
        test_images=None if test_x is None else _as_nchw(test_x, path),
        test_labels=None if test_y is None else test_y.astype(np.int64).reshape(-1),
        aux_images=None if aux_x is None else _as_nchw(aux_x, path),
        aux_labels=None if aux_y is None else aux_y.astype(np.int64).reshape(-1),
        class_names=tuple(str(i) for i in range(n_classes)), source=str(path),
    )


def load_image_folder(folder: Path) -> Dataset:
    """One sub-folder per class (sorted names = label order); all images must share one size."""
    from PIL import Image  # only this reader needs Pillow

    class_dirs = sorted(p for p in folder.iterdir() if p.is_dir())
    images, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(file) as img:
                    array = np.asarray(img.convert("RGB" if img.mode not in ("L", "1", "I;16") else "L"))
                images.append(array)
                labels.append(label)
    if not images:
        raise SiftError(f"{folder} holds no images in class sub-folders")
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise SiftError(f"images in {folder} have different sizes {sorted(shapes)[:3]}; resize them to one size first")
    return Dataset(
        name=folder.name, train_images=_as_nchw(np.stack(images), folder), train_labels=np.asarray(labels, np.int64),
        test_images=None, test_labels=None, class_names=tuple(d.name for d in class_dirs), source=str(folder),
    )


def load_dataset(data_dir: Path | None = None) -> Dataset:
    """Load whatever lies at `data_dir` (default: Debian's Fashion-MNIST)."""
    path = Path(data_dir).resolve() if data_dir is not None else DEFAULT_DATA_DIR
    if not path.exists():
        if data_dir is None:
            raise SiftError(f"Fashion-MNIST is not installed at {DEFAULT_DATA_DIR}; {INSTALL_HINT}")
        raise SiftError(f"data path {path} does not exist")
    if path.is_file():
        if path.suffix == ".npz":
            return load_npz(path)
        raise SiftError(f"{path} is a file but not an .npz; pass a folder of IDX files or class sub-folders, or an .npz")
    if _find(path, "train-images-idx3-ubyte") is not None:
        return load_idx_folder(path)
    if any(p.is_dir() for p in path.iterdir()):
        return load_image_folder(path)
    raise SiftError(f"{path} holds neither IDX files nor class sub-folders of images; {INSTALL_HINT}")
