"""Split cost counts (models/summary.py) against siftfunnel.md §3.4 and runtime-anchors.md."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sift_deploy.models import ModelSpec, SplitClassifier, build_model
from sift_deploy.models.summary import summarize

# arch, channels, size, classes -> z shape, edge params, edge MACs, cloud params (None: not in the digest),
# params registered but never run (ResNet's dead layer1). §3.4 is computed for 64x64 input, 10 classes.
EXPECTED = [
    ("siftfunnel-cnn", 1, 32, 10, (12, 8, 8), 9_202, 1_502_248, None, 0),  # runtime-anchors
    ("siftfunnel-cnn", 1, 64, 10, (12, 16, 16), 9_202, 5_606_312, None, 0),  # runtime-anchors
    ("siftfunnel-cnn", 3, 64, 10, (12, 16, 16), 10_354, 10_324_904, 2_048_860, 0),
    ("plain-cnn", 3, 64, 10, (128, 16, 16), 76_032, 82_575_360, None, 0),
    ("siftfunnel-resnet18", 3, 64, 10, (6, 32, 32), 231_832, 241_792_584, None, 147_968),
    ("siftfunnel-vgg16bn", 3, 64, 10, (4, 16, 16), 300_574, 395_170_328, None, 0),
    ("plain-vgg16bn", 3, 64, 10, (128, 16, 16), 260_928, 384_565_248, None, 0),
]


@pytest.mark.parametrize("arch, nc, size, k, shape, edge_params, edge_macs, cloud_params, unused", EXPECTED)
def test_counts_match_the_digest(arch, nc, size, k, shape, edge_params, edge_macs, cloud_params, unused):
    s = summarize(build_model(ModelSpec(arch, nc, k, size)))
    assert s.transmitted_shape == shape
    assert s.edge.params == edge_params and s.edge.macs == edge_macs
    if cloud_params is not None:
        assert s.cloud.params == cloud_params
    assert s.unused_params == unused
    assert s.registered_params == s.edge.params + s.cloud.params + s.unused_params
    values = shape[0] * shape[1] * shape[2]
    assert s.transmitted_values == values
    assert s.transmitted_bytes == {"fp32": 4 * values, "fp16": 2 * values, "int8": values}


def test_digest_totals():
    """§3.4 totals: SiftFunnel-CNN 203 M MACs; ResNet 11.05 M params and 2,079 M MACs with its dead layer1."""
    cnn = summarize(build_model(ModelSpec("siftfunnel-cnn", 3, 10, 64)))
    assert round(cnn.total_macs / 1e6) == 203
    resnet = summarize(build_model(ModelSpec("siftfunnel-resnet18", 3, 10, 64)))
    assert round(resnet.registered_params / 1e4) == 1105  # layer1 is registered (official checkpoints hold it) ...
    assert abs(resnet.total_macs / 1e6 - (2079 - 604)) < 1  # ... but its 604 M MACs are never computed


def test_unused_module_counts_for_neither_half():
    base = build_model(ModelSpec("siftfunnel-cnn", 1, 10, 32))
    dead = nn.Conv2d(64, 64, 3, bias=False)
    model = SplitClassifier(base.spec, base.edge, base.cloud, base.split_point, unused={"dead": dead})
    s = summarize(model)
    assert s.edge.params == 9_202 and s.edge.macs == 1_502_248
    assert s.unused_params == dead.weight.numel() == 36_864
    assert s.registered_params == s.total_params + 36_864


def test_module_skipped_inside_the_edge_is_unused():
    class SkippingEdge(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.skipped = nn.Linear(10, 10)  # registered, never called

        def forward(self, x):
            return self.conv(x)

    class Cloud(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4 * 32 * 32, 10)

        def forward(self, z):
            return self.fc(z.flatten(1))

    model = SplitClassifier(ModelSpec("toy", 1, 10, 32), SkippingEdge(), Cloud(), "conv")
    s = summarize(model)
    assert s.edge.params == 4 * 9 + 4 and s.edge.macs == 4 * 32 * 32 * 9
    assert s.cloud.params == 4096 * 10 + 10 and s.cloud.macs == 4096 * 10
    assert s.unused_params == 110


def test_a_module_called_twice_counts_macs_twice_params_once():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)

        def forward(self, x):
            return self.conv(self.conv(x))

    model = SplitClassifier(ModelSpec("toy", 1, 10, 32), Twice(), nn.Flatten(), "conv")
    s = summarize(model)
    assert s.edge.params == 9 and s.edge.macs == 2 * 32 * 32 * 9


def test_summary_leaves_the_model_as_it_was():
    model = build_model(ModelSpec("siftfunnel-cnn", 1, 10, 32)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summarize(model)
    assert model.training and model.edge.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BN running stats untouched (eval mode, no_grad)
    assert not any(m._forward_hooks for m in model.modules())
