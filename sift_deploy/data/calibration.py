"""The committed calibration set and user-supplied calibration files.

`sift_deploy/calibration/fmnist-train-768.npz` holds 768 real Fashion-MNIST images drawn from the
model owner's `train` split (split seed 0, draw seed 0): `images[:512]` calibrate quantizers,
`images[512:]` are held out for parity checks when the full dataset is not installed.
Made by `python -m sift_deploy.data.calibration` (see calibration/README.md).
"""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import SiftError

CALIBRATION_DIR = Path(__file__).resolve().parent.parent / "calibration"
DEFAULT_CALIBRATION = CALIBRATION_DIR / "fmnist-train-768.npz"
CALIBRATION_COUNT = 512
HOLDOUT_COUNT = 256
MIN_CALIBRATION_IMAGES = 16


def load_image_file(path: Path) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Read an .npz (key `images`, optional `labels`, `provenance`) or .npy of uint8 or float images."""
    path = Path(path)
    if not path.exists():
        raise SiftError(f"calibration file {path} does not exist")
    if not path.is_file():
        raise SiftError(f"calibration file {path} is not a file; pass an .npz or .npy file")
    raw_provenance = None
    try:
        loaded = np.load(path, allow_pickle=False)  # an .npy array or an .npz archive, by content
        if isinstance(loaded, np.ndarray):
            images, labels = loaded, None
        else:
            with loaded as archive:
                if "images" not in archive.files:
                    raise SiftError(f"{path} has arrays {archive.files}; it needs one named 'images'")
                images = archive["images"]
                labels = archive["labels"] if "labels" in archive.files else None
                raw_provenance = str(archive["provenance"]) if "provenance" in archive.files else None
    # EOFError: an empty or truncated file; BadZipFile: a damaged .npz (bad CRC, cut short); zlib.error: a
    # corrupt compressed member. None of them is an OSError or ValueError.
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else "the file is empty or cut short"
        raise SiftError(f"cannot read {path} as numpy data without pickles ({reason}); it may be truncated or corrupt") from exc
    if not isinstance(images, np.ndarray):
        raise SiftError(f"{path} does not hold a numpy array of images")
    provenance = {}
    if raw_provenance is not None:
        try:
            provenance = json.loads(raw_provenance)
        except json.JSONDecodeError as exc:
            raise SiftError(f"the 'provenance' entry of {path} is not valid JSON ({exc}); fix or drop it") from exc
    return images, labels, provenance


def validate_images(images: np.ndarray, channels: int, source: object, minimum: int = MIN_CALIBRATION_IMAGES) -> np.ndarray:
    """Accept uint8 (N, C, H, W) / (N, H, W) or float in [0, 1]; return uint8 (N, C, H, W)."""
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != channels:
        raise SiftError(f"calibration images in {source} have shape {images.shape}; the model needs (N, {channels}, H, W)")
    if images.dtype != np.uint8:
        if images.dtype.kind != "f":
            raise SiftError(f"calibration images in {source} are {images.dtype}; use uint8 or float32 in [0, 1]")
        if not np.isfinite(images).all():
            raise SiftError(f"calibration images in {source} contain NaN or infinite values")
        if images.min() < 0 or images.max() > 1:
            raise SiftError(f"float calibration images in {source} must lie in [0, 1]")
        images = np.round(images * 255).astype(np.uint8)
    if len(images) < minimum:
        raise SiftError(f"{source} holds {len(images)} calibration images; at least {minimum} are needed")
    return images


def make_default_calibration(out: Path = DEFAULT_CALIBRATION) -> Path:
    from .sources import load_dataset
    from .splits import calibration_indices, make_splits

    splits = make_splits(load_dataset())
    idx = calibration_indices(len(splits.train), CALIBRATION_COUNT + HOLDOUT_COUNT, seed=0)
    provenance = {
        "dataset": splits.info.dataset, "source": splits.info.source, "split": "train", "split_seed": splits.info.seed,
        "draw_seed": 0, "count": len(idx), "calibration": f"images[:{CALIBRATION_COUNT}]",
        "holdout": f"images[{CALIBRATION_COUNT}:]", "licence": "Fashion-MNIST, MIT (c) 2017 Zalando SE",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=splits.train.images[idx], labels=splits.train.labels[idx],
                        train_indices=idx, provenance=np.array(json.dumps(provenance)))
    return out


if __name__ == "__main__":
    print(make_default_calibration())
