"""What the backend tests share: the reference edge with real calibration and held-out images."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def edge_case():
    """(edge module, calibration inputs, held-out inputs, float z of the held-out inputs, source): the reference
    checkpoint's edge on the committed calibration images (the first CALIBRATION_COUNT calibrate, the rest are
    held out); a random-init edge where the reference is missing."""
    import torch

    from sift_deploy.checkpoint import REFERENCE_CHECKPOINT, load_checkpoint
    from sift_deploy.data.calibration import CALIBRATION_COUNT, DEFAULT_CALIBRATION, load_image_file
    from sift_deploy.data.preprocess import model_input
    from sift_deploy.models import ModelSpec, build_model

    if REFERENCE_CHECKPOINT.exists():
        ckpt = load_checkpoint(REFERENCE_CHECKPOINT)
        model, mean, std, source = ckpt.model, ckpt.mean, ckpt.std, "reference checkpoint"
    else:
        torch.manual_seed(0)
        model, mean, std, source = build_model(ModelSpec("siftfunnel-cnn")), 0.5, 0.5, "random init (seed 0)"
    model.eval()
    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    inputs = model_input(images, model.spec.input_size, mean, std)
    calib, held_out = inputs[:CALIBRATION_COUNT], inputs[CALIBRATION_COUNT:]
    with torch.inference_mode():
        z_ref = model.edge(torch.from_numpy(held_out)).numpy()
    return model.edge, calib, held_out, z_ref, source
