"""MINE: ~0 for independent pairs, the known value for correlated Gaussians, and no cap at 1 nat."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sift_deploy.errors import SiftError
from sift_deploy.privacy.mine import MineCritic, estimate_mutual_information


def _gaussian(rng, n, dims, rho):
    """x, z standard normal in `dims` dimensions, corr(x_j, z_j) = rho: I(x; z) = -dims/2 log(1 - rho^2)."""
    x = rng.standard_normal((n, dims))
    z = rho * x + math.sqrt(1 - rho ** 2) * rng.standard_normal((n, dims))
    return x.astype(np.float32), z.astype(np.float32)


def test_independent_pairs_estimate_near_zero():
    rng = np.random.default_rng(0)
    x, z = _gaussian(rng, 1500, 2, 0.0)
    xh, zh = _gaussian(rng, 1000, 2, 0.0)
    result = estimate_mutual_information(x, z, xh, zh, seed=0, epochs=4, batch_size=64)
    assert abs(result.mi_nats) < 0.05
    assert len(result.curve) == 4 and 1 <= result.best_epoch <= 4


def test_known_gaussian_mi_above_one_nat_is_not_capped():
    """True I = -log(1 - 0.81) = 1.66 nats: a sigmoid-bounded critic (official ConvMINE) could not exceed 1."""
    rng = np.random.default_rng(1)
    truth = -2 / 2 * math.log(1 - 0.9 ** 2)
    x, z = _gaussian(rng, 2000, 2, 0.9)
    xh, zh = _gaussian(rng, 2000, 2, 0.9)
    result = estimate_mutual_information(x, z, xh, zh, seed=0, epochs=5, batch_size=64)
    assert result.mi_nats > 1.2
    assert result.mi_nats == pytest.approx(truth, abs=0.3)
    assert result.mi_nats <= truth + 0.1  # a lower bound, up to held-out sampling noise


def test_deterministic_function_leaks_more_than_noise():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2000, 3)).astype(np.float32)
    xh = rng.standard_normal((1000, 3)).astype(np.float32)

    def f(v):
        return np.stack([np.tanh(v[:, 0] * v[:, 1]), v[:, 2] ** 3, np.sin(v[:, 0])], axis=1).astype(np.float32)

    dependent = estimate_mutual_information(x, f(x), xh, f(xh), seed=0, epochs=4, batch_size=64)
    shuffled = estimate_mutual_information(x, f(x)[rng.permutation(2000)], xh, f(xh)[rng.permutation(1000)],
                                           seed=0, epochs=4, batch_size=64)
    assert dependent.mi_nats > 1.0
    assert dependent.mi_nats > shuffled.mi_nats + 1.0


def test_seeded_and_reports_progress():
    rng = np.random.default_rng(3)
    x, z = _gaussian(rng, 400, 1, 0.7)
    xh, zh = _gaussian(rng, 200, 1, 0.7)
    reports = []
    a = estimate_mutual_information(x, z, xh, zh, seed=4, epochs=2, batch_size=50, on_step=reports.append)
    b = estimate_mutual_information(x, z, xh, zh, seed=4, epochs=2, batch_size=50)
    assert a.mi_nats == b.mi_nats and a.curve == b.curve
    assert [r.step for r in reports] == list(range(1, 17)) and reports[-1].total == 16 and reports[0].task == "mine"
    assert a.as_dict()["seed"] == 4 and a.train_pairs == 400 and a.validation_pairs + a.test_pairs == 200


def test_images_and_feature_maps(small_real):
    """Real shapes: x 1x32x32 images, z 128x8x8 features."""
    result = estimate_mutual_information(small_real["aux_x"], small_real["aux_z"], small_real["test_x"],
                                         small_real["test_z"], seed=0, epochs=1, batch_size=64)
    assert math.isfinite(result.mi_nats) and result.mi_nats > 0.0


def test_critic_output_is_unbounded():
    critic = MineCritic((2,), (2,))
    with torch.no_grad():
        for p in critic.out[-1].parameters():
            p.fill_(10.0)
        assert critic(torch.ones(3, 2) * 5, torch.ones(3, 2) * 5).max() > 1.0


def test_user_errors():
    x = np.zeros((20, 2), np.float32)
    with pytest.raises(SiftError, match="different numbers"):
        estimate_mutual_information(x, x[:19], x, x)
    with pytest.raises(SiftError, match="shapes"):
        estimate_mutual_information(x, x, np.zeros((20, 3), np.float32), x)


def test_a_trained_critic_scores_other_pairs_of_the_same_images():
    """`bound_on` reproduces the estimate on the critic's own pairs, is lower on pairs that carry less
    information about the same x, and refuses pairs of another shape."""
    rng = np.random.default_rng(3)
    x, z = _gaussian(rng, 1500, 2, 0.9)
    xh, zh = _gaussian(rng, 1000, 2, 0.9)
    result = estimate_mutual_information(x, z, xh, zh, seed=0, epochs=4, batch_size=64)
    assert result.bound_on(xh, zh) == pytest.approx(result.mi_nats, abs=1e-9)
    noisier = (0.5 * zh + 0.9 * rng.standard_normal(zh.shape)).astype(np.float32)
    assert result.bound_on(xh, noisier) < result.mi_nats - 0.3
    assert "bound_on" not in result.as_dict()
    with pytest.raises(SiftError, match="cannot score pairs"):
        result.bound_on(xh[:10], zh[:10])
