"""The white-box optimisation attack: mechanics, seeding, and that it leaves the edge untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sift_deploy.data.preprocess import normalize
from sift_deploy.errors import SiftError
from sift_deploy.privacy.whitebox import OFFICIAL, total_variation, whitebox_attack


def test_total_variation_by_hand():
    x = torch.zeros(2, 1, 3, 3)
    x[0, 0, :, 2] = 1.0  # one vertical edge: 3 of 6 horizontal differences are 1, no vertical ones
    assert total_variation(x).tolist() == pytest.approx([0.5, 0.0])


def _features(edge, images):
    with torch.inference_mode():
        return edge(torch.from_numpy(normalize(images))).numpy()


def test_attack_fits_features_and_keeps_edge_intact(small_real):
    edge, x = small_real["edge"], small_real["test_x"][:6]
    z = _features(edge, x)
    before = {k: v.clone() for k, v in edge.state_dict().items()}
    reports = []
    short = whitebox_attack(edge, z, (1, 32, 32), steps=2, batch_size=4, seed=0, tv_weight=1.0)
    result = whitebox_attack(edge, z, (1, 32, 32), steps=40, batch_size=4, seed=0, tv_weight=1.0,
                             on_step=reports.append)
    assert result.images.shape == x.shape and result.images.dtype == np.float32
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0
    # more optimisation fits the observed features better
    assert result.record.final_feature_mse < short.record.final_feature_mse
    assert len(reports) == 80 == reports[-1].total and reports[0].task == "whitebox"  # 40 steps x 2 batches
    # the attacked module is not modified and gets no gradients
    assert all(torch.equal(before[k], v) for k, v in edge.state_dict().items())
    assert all(p.grad is None for p in edge.parameters())
    # seeded
    again = whitebox_attack(edge, z, (1, 32, 32), steps=2, batch_size=4, seed=0, tv_weight=1.0)
    assert np.array_equal(again.images, short.images)


def test_batching_does_not_change_results(small_real):
    """Per-image objective: an image's reconstruction does not depend on its batch-mates."""
    edge, x = small_real["edge"], small_real["test_x"][:4]
    z = _features(edge, x)
    a = whitebox_attack(edge, z, (1, 32, 32), steps=5, batch_size=4, seed=1)
    b = whitebox_attack(edge, z, (1, 32, 32), steps=5, batch_size=2, seed=1)
    assert np.allclose(a.images, b.images, atol=1e-5)


def test_shape_mismatch_is_a_user_error(small_real):
    with pytest.raises(SiftError, match="attack the edge that produced them"):
        whitebox_attack(small_real["edge"], np.zeros((2, 12, 8, 8), np.float32), (1, 32, 32), steps=1)


def test_official_settings_run(small_real):
    """The official attack's exact settings (absolute feature loss, clamp only at the end) still run."""
    edge, x = small_real["edge"], small_real["test_x"][:2]
    result = whitebox_attack(edge, _features(edge, x), (1, 32, 32), **{**OFFICIAL, "steps": 3})
    record = result.record.as_dict()
    assert record["lr"] == 0.01 and record["tv_weight"] == 1e3 and not record["relative"] and not record["project"]
    assert result.images.min() >= 0.0 and result.images.max() <= 1.0
