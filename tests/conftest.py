"""Shared fixtures: the real Fashion-MNIST files, a small real subset of them, and a tiny saved checkpoint."""

from __future__ import annotations

import gzip
import importlib.util
import os
import re
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from sift_deploy.checkpoint import save_checkpoint
from sift_deploy.data.sources import DEFAULT_DATA_DIR, Dataset, load_dataset
from sift_deploy.models import ModelSpec, SplitClassifier, build_model

torch.set_num_threads(1)  # the machine has 2 cores and a reference training run may share them

FASHION_MNIST_MISSING = "dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test starts on one torch thread: a training run with `threads=2` must not leave the rest
    of its worker oversubscribing the two cores."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file (gzipped when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw, compresslevel=1) if path.suffix == ".gz" else raw)
    return path


def write_subset(folder: Path, dataset: Dataset, train: int, test: int) -> Path:
    """An IDX folder with the first `train` train and `test` test images (and labels) of `dataset`."""
    write_idx(folder / "train-images-idx3-ubyte", dataset.train_images[:train, 0])
    write_idx(folder / "train-labels-idx1-ubyte", dataset.train_labels[:train])
    write_idx(folder / "t10k-images-idx3-ubyte", dataset.test_images[:test, 0])
    write_idx(folder / "t10k-labels-idx1-ubyte", dataset.test_labels[:test])
    return folder


@pytest.fixture(scope="session")
def idx_writer():
    return write_idx


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    if not all((DEFAULT_DATA_DIR / f"{name}.gz").exists() or (DEFAULT_DATA_DIR / name).exists() for name in IDX_FILES):
        pytest.skip(FASHION_MNIST_MISSING)
    return DEFAULT_DATA_DIR


@pytest.fixture(scope="session")
def fashion_mnist(fashion_mnist_dir) -> Dataset:
    """The full real Fashion-MNIST (60,000 train + 10,000 test), read once per session."""
    return load_dataset(fashion_mnist_dir)


@pytest.fixture(scope="session")
def fashion_mnist_subset(fashion_mnist, tmp_path_factory) -> Path:
    """An IDX folder with the first 300 train and 200 test images of the real files (for quick training runs)."""
    folder = tmp_path_factory.mktemp("data") / "fashion-mnist-subset"
    folder.mkdir()
    return write_subset(folder, fashion_mnist, 300, 200)


TINY_METADATA = {
    "normalization": {"mean": 0.5, "std": 0.5},
    "class_names": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "dataset": {"seed": 7, "aux_fraction": 1 / 6, "sizes": {"train": 50000, "aux": 10000, "test": 10000},
                "source": "/usr/share/datasets/fashion-mnist", "dataset": "fashion-mnist"},
    "training": {"arch": "siftfunnel-cnn", "defense": "siftfunnel", "epochs": 0.01, "batch_size": 128, "lr": 0.001,
                 "seed": 3, "weights": {"alpha": 5.0, "beta": 2.0, "gamma": 2.0, "l1": 0.03, "smoothing": 0.25},
                 "torch": torch.__version__, "python": "3.11"},
    "metrics": {"test_accuracy": 0.1234, "test_images": 10000, "steps": 4, "epochs": 0.01},
}


@dataclass
class TinyCheckpoint:
    path: Path
    model: SplitClassifier
    metadata: dict


def make_tiny_model(arch: str = "siftfunnel-cnn", seed: int = 0, input_size: int = 32) -> SplitClassifier:
    """An untrained model with randomised BatchNorm statistics (so a round trip that drops buffers shows)."""
    torch.manual_seed(seed)
    model = build_model(ModelSpec(arch, 1, 10, input_size))
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> TinyCheckpoint:
    """A siftfunnel-cnn (1x32x32, 10 classes) saved once per session with made-up but complete metadata."""
    model = make_tiny_model()
    path = save_checkpoint(model, TINY_METADATA, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")
    return TinyCheckpoint(path, model, TINY_METADATA)


def invoke(*args):
    """`sift-deploy ARGS` through Typer's CliRunner (stdout and stderr kept apart); arguments may be paths or numbers."""
    from typer.testing import CliRunner

    from sift_deploy.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def error_output(stderr: str) -> list[str]:
    """stderr without the stage lines (`bench: verifying the bundle`) that long commands print in logs."""
    return [line for line in stderr.strip().splitlines() if not re.match(r"(export|bench|train): ", line)]


def assert_one_line_error(result, *fragments: str) -> None:
    """The user's view of a refused command: exit 2, one `error:` line holding every fragment, no traceback."""
    assert result.exit_code == 2, result.output
    lines = error_output(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def shared_root(tmp_path_factory, name: str) -> Path:
    """A folder every pytest-xdist worker of this run sees (the workers' common base temp), so that
    what one worker builds the others reuse; a plain run gets its own base temp."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / name
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def reference_bundle(tmp_path_factory):
    """reference_bundle(target, precision=None) -> bundle of the shipped reference, exported once per
    run and shared by the xdist workers (parity on the committed hold-out images; the 10,000-image
    parity is in the slow tier). Read only: tests that change a bundle change a copy."""
    from filelock import FileLock

    from sift_deploy.profiles import load_profile

    root = shared_root(tmp_path_factory, "reference-bundles")

    def get(target: str, precision: str | None = None) -> Path:
        from sift_deploy.export import export_bundle

        precision = precision or load_profile(target).default_precision
        out = root / f"{Path(target).stem}-{precision}"
        with FileLock(f"{out}.lock"):
            if not (out / "manifest.json").exists():
                outcome = export_bundle(None, target, precision, output=out, parity_on_test_split=False)
                assert outcome.passed, outcome.manifest["parity"]["failures"]
        return out

    return get


ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def loaded_script(relative: str):
    """A script of the repository (benchmarks/, scripts/) imported as a module under its file name, registered in
    sys.modules while in use (dataclasses look their module up there)."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(path.stem, None)
