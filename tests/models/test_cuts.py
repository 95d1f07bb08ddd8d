"""Named cuts (sift_deploy/models/split.py `Stage`, `split_at`): every cut of every architecture
composes to the full model, keeps the weights, and is named as the official code names its layers."""

from __future__ import annotations

import pytest
import torch

from sift_deploy.errors import SiftError
from sift_deploy.models import ARCHITECTURES, ModelSpec, build_model
from sift_deploy.models.split import Chain

# Cuts of the 32x32 grey models, input side first, with z's shape; the default cut is marked.
REFERENCE_CUTS = {
    "siftfunnel-cnn": [("triplet", (64, 16, 16)), ("cbam*", (12, 8, 8)), ("triplet_cloud", (128, 8, 8)),
                       ("block3", (256, 4, 4)), ("block4", (512, 2, 2))],
    "plain-cnn": [("block1", (64, 16, 16)), ("block2*", (128, 8, 8)), ("block3", (256, 4, 4)), ("block4", (512, 2, 2))],
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_edge_then_cloud_is_the_full_model_at_every_cut(arch):
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch, 3, 10, 32)).eval()
    x = torch.randn(2, 3, 32, 32)
    keys = set(model.state_dict())
    with torch.no_grad():
        full = model(x)
        for cut in model.cuts:
            split = model.split_at(cut)
            z = split.edge(x)
            assert torch.allclose(split.cloud(z), full, rtol=0, atol=1e-6), cut
            assert split.split_point == cut and set(split.state_dict()) == keys
            assert split.transmitted_shape() == tuple(z.shape[1:])


@pytest.mark.parametrize("arch", sorted(REFERENCE_CUTS))
def test_reference_cuts_are_named_and_shaped(arch):
    model = build_model(ModelSpec(arch, 1, 10, 32))
    expected = [(name.rstrip("*"), shape) for name, shape in REFERENCE_CUTS[arch]]
    assert [(cut, model.split_at(cut).transmitted_shape()) for cut in model.cuts] == expected
    assert model.split_point == next(name.rstrip("*") for name, _ in REFERENCE_CUTS[arch] if name.endswith("*"))


def test_the_default_cut_keeps_the_model_s_own_halves_and_others_are_chains():
    model = build_model(ModelSpec("siftfunnel-cnn", 1, 10, 32))
    assert model.split_at("cbam").edge is model.edge
    other = model.split_at("triplet")
    assert isinstance(other.edge, Chain) and isinstance(other.cloud, Chain)
    assert other.split_at("cbam").edge is model.edge  # re-splitting from any cut reaches the default halves


def test_a_resplit_shares_weights_with_the_original():
    model = build_model(ModelSpec("siftfunnel-cnn", 1, 10, 32)).eval()
    split = model.split_at("block3")
    with torch.no_grad():
        model.block1[0].weight.mul_(0.5)
    assert split.block1[0].weight is model.block1[0].weight
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(split.cloud(split.edge(x)), model(x))


def test_train_and_eval_reach_a_chain_s_modules():
    split = build_model(ModelSpec("siftfunnel-cnn", 1, 10, 32)).split_at("triplet_cloud")
    split.train()
    assert split.block1[1].training and split.edge.training and split.cloud.training
    split.eval()
    assert not split.block1[1].training and not split.up.conv[2].training


def test_an_unknown_cut_names_the_choices():
    model = build_model(ModelSpec("plain-cnn", 1, 10, 32))
    with pytest.raises(SiftError, match="plain-cnn has no cut 'funnel'; choose one of block1, block2, block3, block4"):
        model.split_at("funnel")


@pytest.mark.parametrize("arch, block_idx, cut", [("siftfunnel-cnn", 1, "triplet"), ("siftfunnel-cnn", 2, "cbam"),
                                                  ("siftfunnel-vgg16bn", 3, "cbam"), ("siftfunnel-resnet18", 2, "cbam")])
def test_official_block_idx_names_the_protected_cut(arch, block_idx, cut):
    model = build_model(ModelSpec(arch, 3, 10, 64))
    assert model.stage(cut).block_idx == block_idx
