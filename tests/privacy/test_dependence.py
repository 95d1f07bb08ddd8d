"""Distance correlation and the non-zero count of the transmitted features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sift_deploy.errors import SiftError
from sift_deploy.privacy.dependence import distance_correlation, distance_correlation_sq, nonzero_stats
from sift_deploy.train.objective import distance_correlation_sq as training_dcor_sq


def test_matches_the_training_objective():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 1, 8, 8)).astype(np.float32)
    z = np.maximum(x[:, :, ::2, ::2] + 0.5 * rng.normal(size=(64, 1, 4, 4)), 0).astype(np.float32)
    expected = training_dcor_sq(torch.from_numpy(x).double(), torch.from_numpy(z).double()).item()
    assert distance_correlation_sq(x, z) == pytest.approx(expected, abs=1e-6)
    assert distance_correlation_sq(torch.from_numpy(x), torch.from_numpy(z)) == pytest.approx(expected, abs=1e-6)


def test_blocked_computation_matches_direct_one():
    """More samples than one block (256): the blocked distances equal the direct N x N x D ones."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 5))
    z = np.tanh(x @ rng.normal(size=(5, 3))) + 0.3 * rng.normal(size=(600, 3))

    def direct(a, b):
        def centred(v):
            d = np.sqrt(((v[:, None, :] - v[None, :, :]) ** 2).sum(-1))
            return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()
        A, B = centred(a), centred(b)
        return (A * B).mean() / np.sqrt((A * A).mean() * (B * B).mean())

    assert distance_correlation_sq(x, z, max_samples=600) == pytest.approx(direct(x, z), abs=1e-9)


def test_known_cases():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 10))
    assert distance_correlation_sq(x, x) == pytest.approx(1.0)
    assert distance_correlation_sq(x, 3.0 * x - 7.0) == pytest.approx(1.0)  # affine maps: normalised or [0, 1] images agree
    independent = distance_correlation_sq(rng.normal(size=(500, 1)), rng.normal(size=(500, 1)))
    dependent = distance_correlation_sq(x[:, :1], x[:, :1] ** 2)  # uncorrelated but dependent
    assert independent < 0.02 < 0.1 < dependent
    assert distance_correlation(x, x) == pytest.approx(1.0)
    assert distance_correlation_sq(x, np.ones((500, 3))) == 0.0


def test_subsample_is_seeded():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 4))
    z = x + rng.normal(size=(400, 4))
    a = distance_correlation_sq(x, z, max_samples=100, seed=0)
    assert a == distance_correlation_sq(x, z, max_samples=100, seed=0)
    assert a != distance_correlation_sq(x, z, max_samples=100, seed=1)


def test_nonzero_stats():
    z = np.zeros((4, 2, 3, 3), np.float32)
    z[0, 0, 0, 0] = 1.0
    z[1, :, 0, :] = -2.0
    z[2] = 0.5
    stats = nonzero_stats(z)
    assert stats.entries == 18
    assert stats.mean_count == pytest.approx((1 + 6 + 18 + 0) / 4)
    assert stats.fraction == pytest.approx(stats.mean_count / 18)
    assert stats.all_zero_samples == 1
    assert nonzero_stats(z, atol=0.75).mean_count == pytest.approx((1 + 6) / 4)


def test_user_errors():
    with pytest.raises(SiftError, match="different numbers"):
        distance_correlation_sq(np.zeros((10, 2)), np.zeros((9, 2)))
    with pytest.raises(SiftError, match="NaN"):
        distance_correlation_sq(np.full((10, 2), np.nan), np.zeros((10, 2)))
