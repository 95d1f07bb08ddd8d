"""The autoencoder-bottleneck baseline: the unprotected 4-block CNN with a learned encoder at the cut and
its decoder on the cloud side (the official `AE_Classifier_4`, target_model_packages.py; siftfunnel.md §6.2).

Edge: block1 -> block2 -> encoder = z. Cloud: decoder -> block3 -> block4 -> fc.
- encoder (2*ndf -> ndf channels, no spatial change): a 3x3 conv and a conv-SiLU-conv branch in parallel
  over block2's 2*ndf channels, summed, then a 3x3 conv down to ndf channels, BN and ReLU;
- decoder (ndf -> 2*ndf): the same shape back up, ending in the 2*ndf channels block3 takes.
So z is ndf x s/4 x s/4, half the unprotected twin's 2*ndf x s/4 x s/4 at the same depth. The baseline
protects only by that squeeze: it is trained with plain cross-entropy (`--defense none`).

Attribute names and `nn.Sequential` indices follow the official code (`encoder.conv2ed`,
`encoder.encoder.{0,2}`, `encoder.res_edge.{0,1}`; `decoder.res_cloud` on the cloud side), so an official
state_dict loads unchanged. The official class's unused `quantization_factor` argument has no weights.

Cuts (stages): block1, block2 (the twin's own cut), encoder (the default: the bottleneck), decoder, block3,
block4.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import conv_bn_relu_pool
from .cnn import WIDTH, _head
from .split import ModelSpec, SplitClassifier, Stage


def _conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


class BottleneckEncoder(nn.Module):
    """Official `EncoderWithResidualEdge(ndf)`: relu(BN(conv(conv2ed(x) + encoder(x)))), 2*ndf -> ndf channels."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        wide = width * 2
        self.conv2ed = _conv3x3(wide, wide)
        self.encoder = nn.Sequential(_conv3x3(wide, wide), nn.SiLU(), _conv3x3(wide, wide))
        self.res_edge = nn.Sequential(_conv3x3(wide, width), nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.res_edge(self.conv2ed(x) + self.encoder(x)))


class BottleneckDecoder(nn.Module):
    """Official `DecoderWithResidualEdge(ndf)`: relu(BN(conv(conv2ed(z) + encoder(z)))), ndf -> 2*ndf channels."""

    def __init__(self, width: int = WIDTH):
        super().__init__()
        self.conv2ed = _conv3x3(width, width)
        self.encoder = nn.Sequential(_conv3x3(width, width), nn.SiLU(), _conv3x3(width, width))
        self.res_cloud = nn.Sequential(_conv3x3(width, width * 2), nn.BatchNorm2d(width * 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.res_cloud(self.conv2ed(z) + self.encoder(z)))


class AutoencoderCNNEdge(nn.Module):
    def __init__(self, in_channels: int, width: int = WIDTH):
        super().__init__()
        self.block1 = conv_bn_relu_pool(in_channels, width)
        self.block2 = conv_bn_relu_pool(width, width * 2)
        self.encoder = BottleneckEncoder(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.block2(self.block1(x)))


class AutoencoderCNNCloud(nn.Module):
    def __init__(self, input_size: int, num_classes: int, width: int = WIDTH):
        super().__init__()
        self.decoder = BottleneckDecoder(width)
        self.block3 = conv_bn_relu_pool(width * 2, width * 4)
        self.block4 = conv_bn_relu_pool(width * 4, width * 8)
        self.fc = _head(input_size, num_classes, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.block4(self.block3(self.decoder(z))), 1))


def ae_cnn(spec: ModelSpec) -> SplitClassifier:
    edge = AutoencoderCNNEdge(spec.in_channels, spec.width)
    cloud = AutoencoderCNNCloud(spec.input_size, spec.num_classes, spec.width)
    stages = [Stage("block1", (edge.block1,)), Stage("block2", (edge.block2,)), Stage("encoder", (edge.encoder,)),
              Stage("decoder", (cloud.decoder,)), Stage("block3", (cloud.block3,)), Stage("block4", (cloud.block4,)),
              Stage("fc", (nn.Flatten(), cloud.fc))]
    return SplitClassifier(spec, edge, cloud, "encoder", stages=stages)
