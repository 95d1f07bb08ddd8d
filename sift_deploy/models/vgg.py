"""The VGG16-BN backbone: SiftFunnel (`vgg16_bn_pv4` / `VGG_pv4`) and the unprotected `vgg16_bn`.

SiftFunnel edge: conv1 -> SE -> Triplet -> conv2 -> SE -> Triplet -> funnel (`layer1`) -> SE -> CBAM = z,
z = 4 x s/4 x s/4. Cloud: Up -> Triplet -> `block2_mix` -> `features` (VGG config 'D' shortened to
start at 256 channels) -> flatten -> classifier.
The unprotected twin is plain VGG16-BN (`features` + classifier), cut after its second max-pool
(`features.0`..`features.13`, 128 x s/4 x s/4), the same depth as the funnel.

The official classifier input is 512 * (2 * img_size // 64)^2, which is 0 at 32; here it is derived
from the input size (five 2x2 pools: 512 * (s/32)^2), which agrees with the official one at 64.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .blocks import CBAM, SqueezeExcite, TripletAttention, Up, funnel
from .split import ModelSpec, SplitClassifier, Stage

FUNNEL_CHANNELS = 4
CLOUD_WIDTH = 256
# Official config 'D' of the unprotected VGG16 and its shortened SiftFunnel cloud version.
CFG_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
CFG_SIFTFUNNEL_CLOUD = [256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# The unprotected edge: config items up to the second "M", i.e. features[0..13] (128 x s/4 x s/4).
PLAIN_EDGE_CFG, PLAIN_CLOUD_CFG = CFG_VGG16[:6], CFG_VGG16[6:]
PLAIN_CUT = 14  # layers in the edge part: 4 x (conv, BN, ReLU) + 2 pools


def vgg_layers(cfg: list, in_channels: int) -> list[nn.Module]:
    """VGG `make_layers` with BN: Conv3x3 (bias) + BN + ReLU per number, MaxPool2 per 'M'."""
    layers: list[nn.Module] = []
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
        in_channels = item
    return layers


def indexed(layers: list[nn.Module], start: int = 0) -> nn.Sequential:
    """A Sequential whose children keep their index in the uncut official Sequential."""
    return nn.Sequential(OrderedDict((str(start + i), layer) for i, layer in enumerate(layers)))


def conv_pair_pool(in_channels: int, out_channels: int) -> nn.Sequential:
    """(Conv3x3 without bias + BN + ReLU) x2, then MaxPool2: the SiftFunnel VGG's `conv1`/`conv2`."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
    )


def classifier_head(input_size: int, num_classes: int) -> nn.Sequential:
    """FC 512*(s/32)^2 -> 4096 -> ReLU -> Dropout 0.3 -> 4096 -> ReLU -> Dropout 0.2 -> K."""
    if input_size % 32:
        raise ValueError(f"VGG16 needs an input size divisible by 32, got {input_size}")
    flat = 512 * (input_size // 32) ** 2
    return nn.Sequential(
        nn.Linear(flat, 4096),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(4096, num_classes),
    )


class SiftFunnelVGGEdge(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.conv1 = conv_pair_pool(in_channels, 64)
        self.se_block1 = SqueezeExcite(64, reduction=16)
        self.triplet1 = TripletAttention()
        self.conv2 = conv_pair_pool(64, 128)
        self.se_block2 = SqueezeExcite(128, reduction=32)
        self.triplet2 = TripletAttention()
        self.layer1 = funnel(128, 32, FUNNEL_CHANNELS, first_kernel=3, first_bias=False)
        self.se_block3 = SqueezeExcite(FUNNEL_CHANNELS, reduction=4)
        self.cbam = CBAM(FUNNEL_CHANNELS, ratio=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.triplet1(self.se_block1(self.conv1(x)))
        x = self.triplet2(self.se_block2(self.conv2(x)))
        return self.cbam(self.se_block3(self.layer1(x)))


class SiftFunnelVGGCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int):
        super().__init__()
        self.up = Up(FUNNEL_CHANNELS, CLOUD_WIDTH)
        self.triplet_cloud = TripletAttention()
        self.block2_mix = nn.Sequential(
            nn.Conv2d(CLOUD_WIDTH, CLOUD_WIDTH, 3, padding=1),
            nn.BatchNorm2d(CLOUD_WIDTH),
            nn.ReLU(),
        )
        self.features = indexed(vgg_layers(CFG_SIFTFUNNEL_CLOUD, CLOUD_WIDTH))
        self.classifier = classifier_head(input_size, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.features(self.block2_mix(self.triplet_cloud(self.up(z))))
        return self.classifier(torch.flatten(x, 1))


class PlainVGGEdge(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.features = indexed(vgg_layers(PLAIN_EDGE_CFG, in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class PlainVGGCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int):
        super().__init__()
        # The cloud's layers keep their indices in the official uncut `features` (14..43).
        self.features = indexed(vgg_layers(PLAIN_CLOUD_CFG, 128), start=PLAIN_CUT)
        self.classifier = classifier_head(input_size, num_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(z), 1))


def pooled_blocks(features: nn.Sequential) -> list[Stage]:
    """One stage per VGG block (its convs up to and including its max-pool), named `features.<pool index>`."""
    stages, block = [], []
    for key, layer in features.named_children():
        block.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            stages.append(Stage(f"features.{key}", tuple(block)))
            block = []
    return stages


def siftfunnel_vgg16bn(spec: ModelSpec) -> SplitClassifier:
    edge = SiftFunnelVGGEdge(spec.in_channels)
    cloud = SiftFunnelVGGCloud(spec.input_size, spec.num_classes)
    stages = [
        Stage("triplet1", (edge.conv1, edge.se_block1, edge.triplet1), block_idx=1),
        Stage("triplet2", (edge.conv2, edge.se_block2, edge.triplet2), block_idx=2),
        Stage("cbam", (edge.layer1, edge.se_block3, edge.cbam), block_idx=3),
        Stage("triplet_cloud", (cloud.up, cloud.triplet_cloud)),
        Stage("block2_mix", (cloud.block2_mix,)),
        *pooled_blocks(cloud.features),
        Stage("classifier", (nn.Flatten(), cloud.classifier)),
    ]
    return SplitClassifier(spec, edge, cloud, "cbam", stages=stages)


def plain_vgg16bn(spec: ModelSpec) -> SplitClassifier:
    edge = PlainVGGEdge(spec.in_channels)
    cloud = PlainVGGCloud(spec.input_size, spec.num_classes)
    stages = [*pooled_blocks(edge.features), *pooled_blocks(cloud.features),
              Stage("classifier", (nn.Flatten(), cloud.classifier))]
    return SplitClassifier(spec, edge, cloud, f"features.{PLAIN_CUT - 1}", stages=stages)
