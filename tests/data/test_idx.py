"""IDX reader: the real Debian Fashion-MNIST files, and broken files that must fail with a SiftError."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from sift_deploy.data.idx import read_idx
from sift_deploy.data.sources import load_dataset
from sift_deploy.errors import SiftError


def _idx_path(folder, stem):
    return folder / f"{stem}.gz" if (folder / f"{stem}.gz").exists() else folder / stem


@pytest.mark.parametrize("prefix, count", [("train", 60000), ("t10k", 10000)])
def test_real_fashion_mnist_parses(fashion_mnist_dir, prefix, count):
    images = read_idx(_idx_path(fashion_mnist_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_idx_path(fashion_mnist_dir, f"{prefix}-labels-idx1-ubyte"))
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [count // 10] * 10
    assert labels[0] == 9  # both sets open with an ankle boot
    assert 0 < images.mean() < 255 and images.max() == 255 and images.min() == 0


def test_load_dataset_gives_nchw_and_class_names(fashion_mnist):
    assert fashion_mnist.name == "fashion-mnist"
    assert fashion_mnist.train_images.shape == (60000, 1, 28, 28)
    assert fashion_mnist.test_images.shape == (10000, 1, 28, 28)
    assert fashion_mnist.class_names[9] == "Ankle boot"


def test_written_idx_round_trips(tmp_path, idx_writer):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        assert np.array_equal(read_idx(idx_writer(tmp_path / name, array)), array)


@pytest.fixture
def good_bytes(tmp_path, idx_writer) -> bytes:
    return idx_writer(tmp_path / "good-idx3-ubyte", np.ones((5, 4, 4), np.uint8)).read_bytes()


def test_truncated_data_is_refused(tmp_path, good_bytes):
    path = tmp_path / "cut-idx3-ubyte"
    path.write_bytes(good_bytes[:-7])
    with pytest.raises(SiftError, match="truncated or corrupt"):
        read_idx(path)


def test_extra_bytes_are_refused(tmp_path, good_bytes):
    path = tmp_path / "long-idx3-ubyte"
    path.write_bytes(good_bytes + b"\x00")
    with pytest.raises(SiftError, match="truncated or corrupt"):
        read_idx(path)


def test_header_cut_inside_the_sizes_is_refused(tmp_path, good_bytes):
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(good_bytes[:9])  # magic + two of the three sizes, and a bit
    with pytest.raises(SiftError, match="truncated"):
        read_idx(path)


@pytest.mark.parametrize("magic", [b"\x01\x00\x08\x03", b"\x00\x00\x07\x03", b"PK\x03\x04", b"\x00\x00"])
def test_bad_magic_is_refused(tmp_path, good_bytes, magic):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(magic + good_bytes[4:] if len(magic) == 4 else magic)
    with pytest.raises(SiftError, match="bad magic"):
        read_idx(path)


def test_truncated_gzip_is_refused(tmp_path, good_bytes):
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(good_bytes)[:-10])
    with pytest.raises(SiftError, match="cannot read IDX file"):
        read_idx(path)


def test_not_gzip_with_gz_suffix_is_refused(tmp_path, good_bytes):
    path = tmp_path / "plain-idx3-ubyte.gz"
    path.write_bytes(good_bytes)
    with pytest.raises(SiftError, match="cannot read IDX file"):
        read_idx(path)


def test_folder_with_a_missing_file_names_it(tmp_path, idx_writer):
    idx_writer(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8))
    idx_writer(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    idx_writer(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(SiftError, match="test_y"):
        load_dataset(tmp_path)


def test_label_count_mismatch_is_refused(tmp_path, idx_writer):
    idx_writer(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4, 4), np.uint8))
    idx_writer(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    idx_writer(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 4, 4), np.uint8))
    idx_writer(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(SiftError, match="counts differ"):
        load_dataset(tmp_path)
