"""Parity at export runs on a sample of the test split by default, with its agreement interval;
`--parity-images all` runs the whole split."""

from __future__ import annotations

import numpy as np
import pytest

from sift_deploy.errors import SiftError
from sift_deploy.export import PARITY_SAMPLE, _sample, export_bundle, parity_sample_size
from sift_deploy.parity import agreement_interval, compare, wilson_interval


def test_wilson_interval():
    lo, hi = wilson_interval(2985, 3000)
    assert lo < 0.995 < hi and hi - lo < 0.006
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(0, 10)[0] == 0.0


def test_parity_sample_size():
    assert parity_sample_size("all") is None and parity_sample_size(None) is None
    assert parity_sample_size("3000") == 3000 == PARITY_SAMPLE
    for bad in ("many", "10"):
        with pytest.raises(SiftError, match="parity-images"):
            parity_sample_size(bad)


def test_sample_is_seeded_and_without_replacement():
    images, labels = np.arange(10_000)[:, None], np.arange(10_000)
    a, la, info = _sample(images, labels, 3000, seed=0)
    b, _, _ = _sample(images, labels, 3000, seed=0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 3000 and np.array_equal(a[:, 0], la)
    assert info["images"] == 3000 and info["of"] == 10_000 and info["seed"] == 0
    assert _sample(images, labels, None, 0)[2]["how"] == "all"


def test_max_abs_bounds_absolute_and_relative_to_the_range_of_z():
    rng = np.random.default_rng(0)
    z_ref = rng.normal(size=(50, 8)).astype(np.float32) * 10  # |z| up to about 30
    z_dep = z_ref.copy()
    z_dep[3, 2] += 2.0  # one element off by 2: about 6 % of the largest magnitude
    pred = np.zeros(50, dtype=np.int64)
    relative = compare(z_ref, z_dep, pred, None, None, {"min_cosine": 0.9, "max_abs_relative": 0.1, "min_top1_agreement": 0.9})
    assert relative["passed"] and relative["max_abs_relative"] == pytest.approx(2.0 / np.abs(z_ref).max(), rel=1e-5)
    tight = compare(z_ref, z_dep, pred, None, None, {"min_cosine": 0.9, "max_abs_relative": 0.02, "min_top1_agreement": 0.9})
    assert not tight["passed"] and "of z's largest magnitude" in tight["failures"][0]
    both = compare(z_ref, z_dep, pred, None, None,
                   {"min_cosine": 0.9, "max_abs": 1.0, "max_abs_relative": 0.1, "min_top1_agreement": 0.9})
    assert both["failures"] == [f"max-abs error {both['max_abs']:.3g} exceeds 1.0 by {both['max_abs'] - 1.0:.3g}"]


def test_interval_against_the_bound():
    parity = {"images": 3000, "top1_agreement": 0.995, "thresholds": {"min_top1_agreement": 0.99}}
    out = agreement_interval(parity, {"images": 3000, "of": 10_000})
    assert out["interval_narrower_than_margin"] and "note" not in out
    tight = {"images": 300, "top1_agreement": 0.993, "thresholds": {"min_top1_agreement": 0.99}}
    out = agreement_interval(tight, {"images": 300, "of": 10_000})
    assert not out["interval_narrower_than_margin"] and "--parity-images all" in out["note"]


@pytest.mark.slow
def test_export_parity_on_a_sample_of_the_test_split(fashion_mnist_dir, tmp_path):
    outcome = export_bundle(None, "x86", "fp32", output=tmp_path / "b", parity_images=500)
    parity = outcome.manifest["parity"]
    assert parity["images"] == 500 and parity["sample"]["of"] == 10_000
    lo, hi = parity["top1_agreement_interval"]
    assert lo <= parity["top1_agreement"] <= hi
