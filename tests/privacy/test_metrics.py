"""Metrics against hand-computed cases, intervals against known truths, and the baselines on real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from sift_deploy.errors import SiftError
from sift_deploy.privacy.metrics import (
    PSNR_CAP_DB,
    bootstrap_mean,
    label_only_reconstruction,
    no_information_reconstruction,
    paired_difference,
    per_image_mse,
    per_image_psnr,
    per_image_ssim,
    score_images,
)


def _images(n=6, c=1, side=32, seed=0, high=1.0):
    return np.random.default_rng(seed).uniform(0, high, size=(n, c, side, side)).astype(np.float32)


def test_identical_images_score_perfectly():
    x = _images()
    scores = score_images(x, x.copy())
    assert np.all(scores.mse == 0.0)
    assert np.all(scores.psnr == PSNR_CAP_DB)  # capped, not inf: means and intervals stay finite
    assert np.allclose(scores.ssim, 1.0)


@pytest.mark.parametrize("offset", [0.1, 0.25])
def test_constant_offset_gives_known_mse_and_psnr(offset):
    x = _images(high=1.0 - offset)
    mse = per_image_mse(x, x + offset)
    assert np.allclose(mse, offset ** 2, rtol=1e-5)
    assert np.allclose(per_image_psnr(x, x + offset), -20 * math.log10(offset), rtol=1e-5)


def test_rgb_mse_divides_by_channels():
    """An offset in one of three channels is a third of that channel's MSE (the official code forgot C)."""
    x = _images(c=3, high=0.5)
    x_hat = x.copy()
    x_hat[:, 0] += 0.3
    assert np.allclose(per_image_mse(x, x_hat), 0.09 / 3, rtol=1e-5)


def test_ssim_is_per_image_skimage():
    x, y = _images(n=4, seed=1), _images(n=4, seed=2)
    expected = [structural_similarity(x[i, 0], y[i, 0], data_range=1.0) for i in range(4)]
    assert np.allclose(per_image_ssim(x, y), expected)
    rgb_x, rgb_y = _images(n=3, c=3, seed=3), _images(n=3, c=3, seed=4)
    expected = [structural_similarity(rgb_x[i], rgb_y[i], data_range=1.0, channel_axis=0) for i in range(3)]
    assert np.allclose(per_image_ssim(rgb_x, rgb_y), expected)
    # one value per image, so an image's score does not depend on its neighbours in the batch
    assert per_image_ssim(x[::-1], y[::-1]) == pytest.approx(per_image_ssim(x, y)[::-1])


def test_shape_mismatch_and_range_are_user_errors():
    with pytest.raises(SiftError, match="shape"):
        per_image_mse(_images(n=3), _images(n=4))
    with pytest.raises(SiftError, match=r"\[0, 1\]"):
        per_image_mse(_images() * 255, _images())


def test_bootstrap_is_seeded_and_covers_the_truth():
    values = np.random.default_rng(0).normal(0.3, 0.1, 400)
    a, b = bootstrap_mean(values, seed=5), bootstrap_mean(values, seed=5)
    assert a == b
    assert bootstrap_mean(values, seed=6).low != a.low
    assert a.low < a.mean < a.high
    # Coverage on data whose true mean is known (0.3): about 95 % of intervals contain it.
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(300):
        est = bootstrap_mean(rng.normal(0.3, 0.1, 100), resamples=500, seed=i)
        covered += est.low <= 0.3 <= est.high
    assert 0.89 <= covered / 300 <= 0.99


def _two_way(rng, k, n, mu, sd_seed, sd_image, sd_noise):
    """Per-image score differences D[s, i] = mu + a_s + b_i + e_si (seed, image and residual effects)."""
    image = rng.normal(0, sd_image, n)
    return mu + rng.normal(0, sd_seed, (k, 1)) + image[None, :] + rng.normal(0, sd_noise, (k, n))


def test_paired_difference_covers_the_truth_with_seed_noise():
    """When decoder-seed noise dominates the mean's error (as measured in attack-anchors §4: 10-100x),
    the seed-and-image interval keeps ~95 % coverage, while an interval over images alone collapses."""
    rng = np.random.default_rng(0)
    mu, covered, image_only = 0.01, 0, 0
    reps = 400
    for _ in range(reps):
        diff = _two_way(rng, k=3, n=300, mu=mu, sd_seed=0.01, sd_image=0.01, sd_noise=0.01)
        zeros = [np.zeros(300)] * 3
        stat = paired_difference(list(diff), zeros)
        covered += stat.low <= mu <= stat.high
        seed_avg = diff.mean(axis=0)
        half = 1.96 * seed_avg.std(ddof=1) / math.sqrt(300)
        image_only += seed_avg.mean() - half <= mu <= seed_avg.mean() + half
    assert 0.92 <= covered / reps <= 0.995
    assert image_only / reps < 0.6


def test_paired_difference_pairs_by_seed_and_image():
    rng = np.random.default_rng(2)
    reference = [rng.uniform(0.3, 0.6, 50) for _ in range(3)]
    deployed = [r + 0.02 + 0.001 * s for s, r in enumerate(reference)]
    stat = paired_difference(deployed, reference)
    assert stat.mean == pytest.approx(0.021)
    assert stat.per_seed == pytest.approx((0.020, 0.021, 0.022))
    assert stat.seeds == 3 and stat.images == 50 and stat.seeds_resolved
    assert stat.low < stat.mean < stat.high
    assert stat.mean < stat.upper_bound(0.95) < stat.high  # one-sided bound is tighter than the two-sided end
    assert set(stat.as_dict()) >= {"mean", "low", "high", "se", "seed_se", "image_se", "df", "per_seed"}


def test_paired_difference_with_one_seed_says_so():
    stat = paired_difference([np.linspace(0.1, 0.2, 20)], [np.linspace(0.1, 0.2, 20) - 0.01])
    assert not stat.seeds_resolved and stat.seed_se is None
    assert stat.mean == pytest.approx(0.01)


def test_paired_difference_rejects_mismatched_inputs():
    with pytest.raises(SiftError, match="same seed list"):
        paired_difference([np.zeros(5)] * 3, [np.zeros(5)] * 2)
    with pytest.raises(SiftError, match="same test images"):
        paired_difference([np.zeros(5)], [np.zeros(6)])


def test_baselines_on_real_images(small_real):
    aux_x, aux_y, test_x, test_y = small_real["aux_x"], small_real["aux_y"], small_real["test_x"], small_real["test_y"]
    none = no_information_reconstruction(aux_x, len(test_x))
    label = label_only_reconstruction(aux_x, aux_y, test_y)
    assert none.shape == label.shape == test_x.shape
    assert np.allclose(none[0], aux_x.mean(axis=0))
    assert np.allclose(label[0], aux_x[aux_y == test_y[0]].mean(axis=0))
    none_scores, label_scores = score_images(test_x, none), score_images(test_x, label)
    # knowing the class helps: the label-only oracle beats the no-information guess
    assert label_scores.ssim.mean() > none_scores.ssim.mean() + 0.1
    assert label_scores.mse.mean() < none_scores.mse.mean()
    summary = label_scores.summary(resamples=200)
    assert summary["ssim"].low < summary["ssim"].mean < summary["ssim"].high


def test_label_only_falls_back_for_unseen_class():
    aux = np.stack([np.full((1, 8, 8), v, np.float32) for v in (0.2, 0.4)])
    out = label_only_reconstruction(aux, np.array([0, 1]), np.array([1, 5]))
    assert np.allclose(out[0], 0.4) and np.allclose(out[1], 0.3)
