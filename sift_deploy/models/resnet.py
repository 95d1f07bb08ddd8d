"""The ResNet-18 backbone: SiftFunnel (`rn18_pv4`) and the unprotected `rn18`.

SiftFunnel edge: conv1 -> SE -> Triplet -> `layer2_mix` (stride 2) -> SE -> Triplet -> funnel
(`block2_mix`) -> SE -> CBAM = z, z = 6 x s/2 x s/2. Cloud: Up -> Triplet -> layer3 -> layer4 ->
avg_pool(4) -> fc.
The unprotected twin is plain ResNet-18 cut after layer2 (128 x s/2 x s/2), the same depth.

Decisions against the official code:
- The official SiftFunnel forward runs `layer1` on conv1's output and then discards the result, so
  official weights were trained with layer1 bypassed. Its parameters are kept (registered as
  `unused`, so official checkpoints load strictly) but it is never run and belongs to neither half.
- The official conv1 width is `img_size` (64 at 64, and a crash at 32); here it is always 64.
- The official fc input is 512 * (2 * img_size // 64)^2 (0 at 32); here it is derived from the input
  size (three stride-2 stages, then avg_pool(4): 512 * (s/32)^2), which agrees at 64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import CBAM, SqueezeExcite, TripletAttention, Up, funnel
from .split import ModelSpec, SplitClassifier, Stage

WIDTH = 64
FUNNEL_CHANNELS = 6


class ResidualBlock(nn.Module):
    """Basic block: two Conv3x3 (no bias) + BN, a 1x1-conv shortcut where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.left = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.left(x) + self.shortcut(x))


def res_layer(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Two residual blocks; the first one carries the stride."""
    return nn.Sequential(ResidualBlock(in_channels, out_channels, stride), ResidualBlock(out_channels, out_channels))


def stem(in_channels: int) -> nn.Sequential:
    """`conv1`: Conv3x3 (no bias, stride 1) + BN + ReLU at 64 channels."""
    return nn.Sequential(nn.Conv2d(in_channels, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH), nn.ReLU())


def fc_input_size(input_size: int) -> int:
    """Flattened size after layer4 and avg_pool(4): 512 x (s/32)^2 (s/8 after three stride-2 stages)."""
    if input_size % 32:
        raise ValueError(f"ResNet18 needs an input size divisible by 32, got {input_size}")
    return 512 * (input_size // 32) ** 2


def classify(fc: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """The official head: avg_pool(4) -> flatten -> fc."""
    return fc(torch.flatten(F.avg_pool2d(x, 4), 1))


class PoolFlatten(nn.Module):
    """avg_pool(4) -> flatten: the head's parameter-free start, as a module for the head stage."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.avg_pool2d(x, 4), 1)


class SiftFunnelResNetEdge(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = stem(in_channels)
        self.se_block1 = SqueezeExcite(WIDTH, reduction=16)
        self.triplet = TripletAttention()
        self.layer2_mix = nn.Sequential(
            nn.Conv2d(WIDTH, 128, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
            nn.Conv2d(128, 128, 3, padding=1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(),
        )
        self.se_block2 = SqueezeExcite(128, reduction=32)
        self.triplet_2 = TripletAttention()
        self.block2_mix = funnel(128, 32, FUNNEL_CHANNELS)
        self.se_block3 = SqueezeExcite(FUNNEL_CHANNELS, reduction=3)
        self.cbam = CBAM(FUNNEL_CHANNELS, ratio=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.triplet(self.se_block1(self.conv1(x)))
        x = self.triplet_2(self.se_block2(self.layer2_mix(x)))
        return self.cbam(self.se_block3(self.block2_mix(x)))


class SiftFunnelResNetCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int):
        super().__init__()
        self.up = Up(FUNNEL_CHANNELS, 128)
        self.triplet_cloud = TripletAttention()
        self.layer3 = res_layer(128, 256, stride=2)
        self.layer4 = res_layer(256, 512, stride=2)
        self.fc = nn.Linear(fc_input_size(input_size), num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.triplet_cloud(self.up(z))))
        return classify(self.fc, x)


class PlainResNetEdge(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = stem(in_channels)
        self.layer1 = res_layer(WIDTH, 64, stride=1)
        self.layer2 = res_layer(64, 128, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer2(self.layer1(self.conv1(x)))


class PlainResNetCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int):
        super().__init__()
        self.layer3 = res_layer(128, 256, stride=2)
        self.layer4 = res_layer(256, 512, stride=2)
        self.fc = nn.Linear(fc_input_size(input_size), num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return classify(self.fc, self.layer4(self.layer3(z)))


def siftfunnel_resnet18(spec: ModelSpec) -> SplitClassifier:
    edge = SiftFunnelResNetEdge(spec.in_channels)
    cloud = SiftFunnelResNetCloud(spec.input_size, spec.num_classes)
    stages = [
        Stage("triplet", (edge.conv1, edge.se_block1, edge.triplet), block_idx=1),
        Stage("triplet_2", (edge.layer2_mix, edge.se_block2, edge.triplet_2)),
        Stage("cbam", (edge.block2_mix, edge.se_block3, edge.cbam), block_idx=2),
        Stage("triplet_cloud", (cloud.up, cloud.triplet_cloud)),
        Stage("layer3", (cloud.layer3,)),
        Stage("layer4", (cloud.layer4,)),
        Stage("fc", (PoolFlatten(), cloud.fc)),
    ]
    return SplitClassifier(spec, edge, cloud, "cbam", unused={"layer1": res_layer(WIDTH, 64, stride=1)}, stages=stages)


def plain_resnet18(spec: ModelSpec) -> SplitClassifier:
    edge = PlainResNetEdge(spec.in_channels)
    cloud = PlainResNetCloud(spec.input_size, spec.num_classes)
    stages = [Stage("conv1", (edge.conv1,)), Stage("layer1", (edge.layer1,)), Stage("layer2", (edge.layer2,)),
              Stage("layer3", (cloud.layer3,)), Stage("layer4", (cloud.layer4,)), Stage("fc", (PoolFlatten(), cloud.fc))]
    return SplitClassifier(spec, edge, cloud, "layer2", stages=stages)
