"""Fixtures of the privacy tests: a small real Fashion-MNIST sample (aux and test splits) and features of it."""

from __future__ import annotations

import pytest
import torch

from sift_deploy.data.preprocess import fit_to_size, normalize, to_unit
from sift_deploy.data.splits import make_splits
from sift_deploy.models import ModelSpec, build_model


@pytest.fixture(scope="session")
def small_real(fashion_mnist):
    """600 aux and 200 test images in [0, 1] at 32x32 with labels, and their features from a seeded
    random-init plain-CNN edge (128x8x8): real images and splits; any deterministic features will do."""
    splits = make_splits(fashion_mnist)
    aux_x = to_unit(fit_to_size(splits.aux.images[:600], 32))
    test_x = to_unit(fit_to_size(splits.test.images[:200], 32))
    torch.manual_seed(0)
    edge = build_model(ModelSpec("plain-cnn")).eval().edge
    with torch.inference_mode():
        aux_z = edge(torch.from_numpy(normalize(aux_x))).numpy()
        test_z = edge(torch.from_numpy(normalize(test_x))).numpy()
    return {
        "aux_x": aux_x, "aux_y": splits.aux.labels[:600], "aux_z": aux_z,
        "test_x": test_x, "test_y": splits.test.labels[:200], "test_z": test_z, "edge": edge,
    }
