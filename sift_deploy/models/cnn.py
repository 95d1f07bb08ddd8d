"""The 4-block CNN backbone: SiftFunnel (`pv4_classifier_4`) and the unprotected `Classifier_4`.

SiftFunnel edge: block1 -> SE -> TripletAttention -> funnel (`block2_mix`) -> SE -> CBAM = z.
Cloud: Up -> TripletAttention -> block3 -> block4 -> fc.
The unprotected twin is four Conv-BN-ReLU-MaxPool blocks, cut after block2 (same depth).

Cuts (stages): a block with the attention gates on its output is one stage, so the SiftFunnel
cuts are the official feat[0] (`triplet`), feat[1] (`cbam`, the funnel) and feat[2]
(`triplet_cloud`), then the cloud's block3 and block4.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import CBAM, SqueezeExcite, TripletAttention, Up, conv_bn_relu_pool, funnel
from .split import ModelSpec, SplitClassifier, Stage

WIDTH = 64  # the official default `ndf`; ModelSpec.width sets another
FUNNEL_CHANNELS = 12


class SiftFunnelCNNEdge(nn.Module):
    def __init__(self, in_channels: int, width: int = WIDTH):
        super().__init__()
        self.block1 = conv_bn_relu_pool(in_channels, width)
        self.se_block1 = SqueezeExcite(width, reduction=32)
        self.triplet = TripletAttention()
        self.block2_mix = funnel(width, width // 4, FUNNEL_CHANNELS, pool=True)
        self.se_block2 = SqueezeExcite(FUNNEL_CHANNELS, reduction=4)
        self.cbam = CBAM(FUNNEL_CHANNELS, ratio=6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.triplet(self.se_block1(self.block1(x)))
        return self.cbam(self.se_block2(self.block2_mix(x)))


def _head(input_size: int, num_classes: int, width: int = WIDTH) -> nn.Sequential:
    """fc of the CNN: flattened 8*ndf x (s/16)^2 -> 5*K -> dropout -> K."""
    flat = width * 8 * (input_size // 16) ** 2
    return nn.Sequential(nn.Linear(flat, num_classes * 5), nn.Dropout(0.5), nn.Linear(num_classes * 5, num_classes))


class SiftFunnelCNNCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int, width: int = WIDTH):
        super().__init__()
        self.up = Up(FUNNEL_CHANNELS, width * 2)
        self.triplet_cloud = TripletAttention()
        self.block3 = conv_bn_relu_pool(width * 2, width * 4)
        self.block4 = conv_bn_relu_pool(width * 4, width * 8)
        self.fc = _head(input_size, num_classes, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.block4(self.block3(self.triplet_cloud(self.up(z))))
        return self.fc(torch.flatten(x, 1))


class PlainCNNEdge(nn.Module):
    def __init__(self, in_channels: int, width: int = WIDTH):
        super().__init__()
        self.block1 = conv_bn_relu_pool(in_channels, width)
        self.block2 = conv_bn_relu_pool(width, width * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x))


class PlainCNNCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int, width: int = WIDTH):
        super().__init__()
        self.block3 = conv_bn_relu_pool(width * 2, width * 4)
        self.block4 = conv_bn_relu_pool(width * 4, width * 8)
        self.fc = _head(input_size, num_classes, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.block4(self.block3(z)), 1))


def siftfunnel_cnn(spec: ModelSpec) -> SplitClassifier:
    edge = SiftFunnelCNNEdge(spec.in_channels, spec.width)
    cloud = SiftFunnelCNNCloud(spec.input_size, spec.num_classes, spec.width)
    stages = [
        Stage("triplet", (edge.block1, edge.se_block1, edge.triplet), block_idx=1),
        Stage("cbam", (edge.block2_mix, edge.se_block2, edge.cbam), block_idx=2),
        Stage("triplet_cloud", (cloud.up, cloud.triplet_cloud), block_idx=3),
        Stage("block3", (cloud.block3,)),
        Stage("block4", (cloud.block4,)),
        Stage("fc", (nn.Flatten(), cloud.fc)),
    ]
    return SplitClassifier(spec, edge, cloud, "cbam", stages=stages)


def plain_cnn(spec: ModelSpec) -> SplitClassifier:
    edge = PlainCNNEdge(spec.in_channels, spec.width)
    cloud = PlainCNNCloud(spec.input_size, spec.num_classes, spec.width)
    stages = [Stage("block1", (edge.block1,)), Stage("block2", (edge.block2,)), Stage("block3", (cloud.block3,)),
              Stage("block4", (cloud.block4,)), Stage("fc", (nn.Flatten(), cloud.fc))]
    return SplitClassifier(spec, edge, cloud, "block2", stages=stages)
