"""The autoencoder-bottleneck baseline `ae-cnn` (models/autoencoder.py, the official AE_Classifier_4):
its cuts, its z, its edge cost against the unprotected twin it extends, and its width option.
(Strict loading of the official layout is in test_models.py with the other official classes.)"""

from __future__ import annotations

import pytest
import torch

from sift_deploy.models import TWINS, ModelSpec, build_model
from sift_deploy.models.summary import summarize


@pytest.mark.parametrize("nc, size", [(1, 32), (3, 64)])
def test_forward_shapes_and_the_default_cut_is_the_bottleneck(nc, size):
    torch.manual_seed(0)
    model = build_model(ModelSpec("ae-cnn", nc, 10, size)).eval()
    assert model.split_point == "encoder"
    x = torch.randn(3, nc, size, size)
    with torch.no_grad():
        z = model.edge(x)
        assert z.shape == (3, 64, size // 4, size // 4)
        assert (z >= 0).all()  # the encoder ends in BN + ReLU
        logits = model.cloud(z)
        assert logits.shape == (3, 10) and torch.equal(logits, model(x))


def test_stages_are_the_twin_s_blocks_around_encoder_and_decoder():
    model = build_model(ModelSpec("ae-cnn", 1, 10, 32))
    shapes = [(cut, model.split_at(cut).transmitted_shape()) for cut in model.cuts]
    assert shapes == [("block1", (64, 16, 16)), ("block2", (128, 8, 8)), ("encoder", (64, 8, 8)),
                      ("decoder", (128, 8, 8)), ("block3", (256, 4, 4)), ("block4", (512, 2, 2))]
    assert set(model.edge.state_dict()) == {k for k in model.state_dict() if k.split(".")[0] in ("block1", "block2", "encoder")}
    assert TWINS["ae-cnn"] == "plain-cnn"


def test_the_bottleneck_halves_the_twin_s_z_and_costs_edge_compute():
    ae = summarize(build_model(ModelSpec("ae-cnn", 1, 10, 32)))
    twin = summarize(build_model(ModelSpec("plain-cnn", 1, 10, 32)))
    assert ae.transmitted_bytes["int8"] * 2 == twin.transmitted_bytes["int8"] == 8192
    # the encoder at 8x8: three 3x3 convs 128 -> 128 and one 128 -> 64, on top of the twin's blocks 1 and 2
    encoder_macs = 3 * 128 * 8 * 8 * 128 * 9 + 64 * 8 * 8 * 128 * 9
    assert ae.edge.macs == twin.edge.macs + encoder_macs == 52_494_336
    assert ae.edge.params == twin.edge.params + 3 * (128 * 128 * 9 + 128) + (128 * 64 * 9 + 64) + 2 * 64


def test_width_option_scales_the_bottleneck():
    model = build_model(ModelSpec("ae-cnn", 1, 10, 32, width=32))
    assert model.transmitted_shape() == (32, 8, 8)
    assert model.split_at("block2").transmitted_shape() == (64, 8, 8)
