"""The SiftFunnel objective against values worked out by hand or from the definitions (siftfunnel.md §4),
and the NoPeek baseline's (cross-entropy + beta * dCor^2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sift_deploy.train.objective import (
    ObjectiveWeights,
    distance_correlation_sq,
    label_smoothing_kl,
    nopeek_loss,
    pearson_channel_penalty,
    siftfunnel_loss,
    smoothed_targets,
)


def t64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


# ------------------------------------------------------------------ distance correlation

def test_dcor_of_a_sample_with_itself_is_one():
    x = torch.randn(16, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert distance_correlation_sq(x, x).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("a, b", [(3.0, 2.0), (-0.5, 7.0)])
def test_dcor_is_one_under_affine_maps(a, b):
    x = torch.randn(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert distance_correlation_sq(x, a * x + b).item() == pytest.approx(1.0, abs=1e-5)


def test_dcor_three_samples_by_hand():
    # x = (0, 1, 2), y = (0, 1, 0). Distance matrices a = |i - j|, b = [[0,1,0],[1,0,1],[0,1,0]].
    # Double-centred: A = [[-10, 2, 8], [2, -4, 2], [8, 2, -10]] / 9, B = [[-2, 4, -2], [4, -8, 4], [-2, 4, -2]] / 9.
    # sum(A*B) = 72/81, sum(A*A) = 360/81, sum(B*B) = 144/81, so dCor^2 = 72 / sqrt(360 * 144) = 1 / sqrt(10).
    value = distance_correlation_sq(t64([[0.0], [1.0], [2.0]]), t64([[0.0], [1.0], [0.0]])).item()
    assert value == pytest.approx(1 / math.sqrt(10), abs=1e-5)


def _dcor_sq_szekely(x: np.ndarray, y: np.ndarray) -> float:
    """Székely-Rizzo-Bakirov (2007) V-statistic form: dCov^2 = S1 + S2 - 2 S3, no double centring."""

    def dcov2(a: np.ndarray, b: np.ndarray) -> float:
        n = len(a)
        s1 = sum(a[i, j] * b[i, j] for i in range(n) for j in range(n)) / n**2
        s2 = a.sum() / n**2 * b.sum() / n**2
        s3 = sum(a[i, j] * b[i, k] for i in range(n) for j in range(n) for k in range(n)) / n**3
        return s1 + s2 - 2 * s3

    da = np.array([[np.linalg.norm(p - q) for q in x] for p in x])
    db = np.array([[np.linalg.norm(p - q) for q in y] for p in y])
    return dcov2(da, db) / math.sqrt(dcov2(da, da) * dcov2(db, db))


def test_dcor_four_samples_matches_the_definition():
    x = np.array([[0.0, 1.0, 2.0], [1.0, -1.0, 0.5], [3.0, 0.0, 0.0], [-2.0, 2.0, 1.0]])
    y = np.array([[1.0, 0.0], [0.0, 2.0], [2.0, 2.0], [0.5, -1.0]])
    expected = _dcor_sq_szekely(x, y)
    assert 0.05 < expected < 0.99  # a case that is neither trivially 0 nor 1
    assert distance_correlation_sq(t64(x), t64(y)).item() == pytest.approx(expected, abs=1e-5)


def test_dcor_flattens_images_per_sample():
    x = torch.randn(6, 2, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    z = torch.randn(6, 4, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    expected = _dcor_sq_szekely(x.reshape(6, -1).numpy(), z.reshape(6, -1).numpy())
    assert distance_correlation_sq(x, z).item() == pytest.approx(expected, abs=1e-5)


def test_dcor_gradient_matches_the_pairwise_difference_form():
    """The loss builds distances from one matrix product; its float32 value and gradient must match the
    direct (n, n, d) difference form, including for sparse, nearly equal features, where cancellation on
    the diagonal would otherwise blow up through sqrt's slope near 0."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(32, 1, 8, 8, generator=gen)
    z = torch.relu(0.05 * torch.randn(32, 12, 2, 2, generator=gen) - 0.03).requires_grad_()

    def direct(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        def centred(flat):
            dist = torch.sqrt((flat[:, None, :] - flat[None, :, :]).pow(2).sum(-1) + 1e-10)
            return dist - dist.mean(0, keepdim=True) - dist.mean(1, keepdim=True) + dist.mean()
        da, db = centred(a.reshape(len(a), -1)), centred(b.reshape(len(b), -1))
        return (da * db).mean() / torch.sqrt((da * da).mean() * (db * db).mean() + 1e-20)

    fast_value = distance_correlation_sq(x, z)
    (fast_grad,) = torch.autograd.grad(fast_value, z)
    direct_value = direct(x, z)
    (direct_grad,) = torch.autograd.grad(direct_value, z)
    assert fast_value.item() == pytest.approx(direct_value.item(), abs=1e-5)
    assert torch.allclose(fast_grad, direct_grad, rtol=1e-3, atol=1e-4 * direct_grad.abs().max().item())


# ------------------------------------------------------------------ Pearson channel penalty

HW = 4
DIAG = ((HW - 1) / HW) ** 2  # cov uses 1/HW, std is unbiased: a varying channel's self-correlation is (HW-1)/HW


def channels(*rows) -> torch.Tensor:
    """One sample, C channels of 2x2 positions."""
    return t64(rows).reshape(1, len(rows), 2, 2)


def test_pearson_perfectly_correlated_channels():
    z = channels([1.0, 2.0, 4.0, 0.0], [3.0, 5.0, 9.0, 1.0])  # second = 2 * first + 1
    assert pearson_channel_penalty(z).item() == pytest.approx(DIAG, abs=1e-9)


def test_pearson_anticorrelated_channels_cost_the_same():
    z = channels([1.0, 2.0, 4.0, 0.0], [-1.0, -3.0, -7.0, 1.0])  # second = -2 * first + 1
    assert pearson_channel_penalty(z).item() == pytest.approx(DIAG, abs=1e-9)


def test_pearson_uncorrelated_channels_keep_only_the_diagonal():
    z = channels([1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0])  # zero covariance
    assert pearson_channel_penalty(z).item() == pytest.approx(DIAG / 2, abs=1e-9)


def test_pearson_constant_channel_adds_nothing_and_stays_finite():
    z = channels([1.0, 2.0, 4.0, 0.0], [5.0, 5.0, 5.0, 5.0]).requires_grad_(True)
    value = pearson_channel_penalty(z)
    value.backward()
    assert value.item() == pytest.approx(DIAG / 4, abs=1e-9)
    assert torch.isfinite(z.grad).all()


def test_pearson_averages_over_the_batch():
    correlated = channels([1.0, 2.0, 4.0, 0.0], [3.0, 5.0, 9.0, 1.0])
    uncorrelated = channels([1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0])
    value = pearson_channel_penalty(torch.cat([correlated, uncorrelated])).item()
    assert value == pytest.approx((DIAG + DIAG / 2) / 2, abs=1e-9)


# ------------------------------------------------------------------ label smoothing

def test_smoothed_targets_k10_s025():
    target = smoothed_targets(torch.tensor([3, 0]), 10, 0.25)
    assert target[0, 3].item() == pytest.approx(0.75)
    assert target[1, 0].item() == pytest.approx(0.75)
    others = target[0, [i for i in range(10) if i != 3]]
    assert torch.allclose(others, torch.full_like(others, 0.25 / 9))
    assert torch.allclose(target.sum(1), torch.ones(2))


def test_kl_against_uniform_prediction_by_hand():
    # softmax(0) = 1/10 everywhere: KL = 0.75 ln(0.75 / 0.1) + 9 * (0.25/9) ln((0.25/9) / 0.1)
    expected = 0.75 * math.log(7.5) + 0.25 * math.log(2.5 / 9)
    value = label_smoothing_kl(torch.zeros(2, 10), torch.tensor([4, 9]), 0.25).item()
    assert value == pytest.approx(expected, abs=1e-6)


def test_kl_for_a_skewed_prediction_by_hand():
    # K = 3, s = 0.3, label 1: target (0.15, 0.7, 0.15); prediction (0.5, 0.25, 0.25).
    expected = 0.15 * math.log(0.15 / 0.5) + 0.7 * math.log(0.7 / 0.25) + 0.15 * math.log(0.15 / 0.25)
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]])) + 2.0  # a shift does not change the softmax
    assert label_smoothing_kl(logits, torch.tensor([1]), 0.3).item() == pytest.approx(expected, abs=1e-6)


def test_kl_is_zero_when_the_prediction_is_the_target():
    target = smoothed_targets(torch.tensor([2]), 10, 0.25)
    assert label_smoothing_kl(torch.log(target), torch.tensor([2]), 0.25).item() == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------ the weighted sum

def test_siftfunnel_loss_is_the_weighted_sum_of_its_terms():
    gen = torch.Generator().manual_seed(4)
    x, z = torch.randn(8, 1, 8, 8, generator=gen), torch.rand(8, 3, 4, 4, generator=gen)
    logits, labels = torch.randn(8, 10, generator=gen), torch.arange(8) % 10
    w = ObjectiveWeights(alpha=1.5, beta=0.5, gamma=3.0, l1=0.1, smoothing=0.2)
    total, terms = siftfunnel_loss(logits, labels, x, z, w)
    assert terms["task"] == pytest.approx(label_smoothing_kl(logits, labels, 0.2).item(), rel=1e-6)
    assert terms["l1"] == pytest.approx(z.abs().mean().item(), rel=1e-6)
    expected = 1.5 * terms["task"] + 0.5 * terms["dcor2"] + 0.1 * terms["l1"] + 3.0 * terms["pearson"]
    assert total.item() == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ NoPeek

def test_nopeek_loss_is_cross_entropy_plus_beta_dcor():
    gen = torch.Generator().manual_seed(5)
    x, z = torch.randn(8, 1, 8, 8, generator=gen), torch.rand(8, 16, 2, 2, generator=gen)
    logits, labels = torch.randn(8, 10, generator=gen), torch.arange(8) % 10
    total, terms = nopeek_loss(logits, labels, x, z, beta=0.7)
    assert set(terms) == {"ce", "dcor2"}
    assert terms["ce"] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-6)
    assert terms["dcor2"] == pytest.approx(distance_correlation_sq(x, z).item(), rel=1e-6)
    assert total.item() == pytest.approx(terms["ce"] + 0.7 * terms["dcor2"], rel=1e-6)


def test_nopeek_dcor_term_pushes_z_away_from_x():
    """The gradient reaches z through the dCor term alone when beta > 0 (none with beta 0 and fixed logits)."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(6, 1, 4, 4, generator=gen)
    z = (x.reshape(6, -1)[:, :8] * 2.0).clone().requires_grad_(True)  # z depends strongly on x
    logits, labels = torch.randn(6, 10, generator=gen), torch.arange(6)
    nopeek_loss(logits, labels, x, z, beta=0.0)[0].backward()
    assert z.grad is None or torch.count_nonzero(z.grad) == 0
    total, terms = nopeek_loss(logits, labels, x, z, beta=1.0)
    assert terms["dcor2"] > 0.9
    total.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
