"""sift_deploy/advise/candidates.py: which cuts advise tries."""

from __future__ import annotations

import pytest

from sift_deploy.advise.candidates import candidate_cuts
from sift_deploy.errors import SiftError
from sift_deploy.models import ModelSpec, build_model


def test_every_cut_input_side_first_with_shape_and_official_block_idx():
    cuts = candidate_cuts(build_model(ModelSpec("siftfunnel-cnn", 1, 10, 32)))
    assert [(c.name, c.z_shape, c.block_idx, c.default) for c in cuts] == [
        ("triplet", (64, 16, 16), 1, False), ("cbam", (12, 8, 8), 2, True), ("triplet_cloud", (128, 8, 8), 3, False),
        ("block3", (256, 4, 4), None, False), ("block4", (512, 2, 2), None, False)]


def test_chosen_cuts_keep_model_order_once_each():
    cuts = candidate_cuts(build_model(ModelSpec("plain-cnn", 1, 10, 32)), ["block3", "block1", "block3"])
    assert [c.name for c in cuts] == ["block1", "block3"]


def test_an_unknown_cut_names_the_choices():
    with pytest.raises(SiftError, match="has no cut 'funnel'; choose from block1, block2, block3, block4"):
        candidate_cuts(build_model(ModelSpec("plain-cnn", 1, 10, 32)), ["funnel"])
