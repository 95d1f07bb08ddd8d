"""Building blocks of the SiftFunnel models: attention modules, the funnel and the cloud's `Up`.

Attribute names and `nn.Sequential` indices follow the official code (GOERAHG214/SiftFunnel,
InfoDR_package.py) so official state_dicts load unchanged. The forward passes are written in the
form that every exporter here accepts (ONNX, litert-torch incl. PT2E int8); each rewrite is
numerically identical to the official formulation:
- global max pooling as `amax` (litert-torch has no lowering for adaptive_max_pool2d);
- broadcasting `x * w` instead of `x * w.expand_as(x)`;
- out-of-place sigmoid (an in-place one escapes the int8 quantizer's fixed 1/256 output scale);
- ReLU before MaxPool (they commute; the other order makes the TFLite converter fuse ReLU into
  the pool and break its same-scale rule).
"""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """SE channel attention: global average -> Linear C->C/r -> ReLU -> Linear -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction, bias=False),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(x.mean(dim=(2, 3)))
        return x * weights[:, :, None, None]


class ConvBN(nn.Module):
    """Conv without bias followed by BatchNorm (official `BasicConv` with relu=False)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class AttentionGate(nn.Module):
    """Z-pool (max and mean over dim 1) -> 7x7 conv + BN -> sigmoid gate."""

    def __init__(self):
        super().__init__()
        self.conv = ConvBN(2, 1, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class TripletAttention(nn.Module):
    """Three attention gates over the (C,H), (C,W) and (H,W) planes, averaged."""

    def __init__(self):
        super().__init__()
        self.cw = AttentionGate()
        self.hc = AttentionGate()
        self.hw = AttentionGate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_cw = self.cw(x.permute(0, 2, 1, 3)).permute(0, 2, 1, 3)
        out_hc = self.hc(x.permute(0, 3, 2, 1)).permute(0, 3, 2, 1)
        return (self.hw(x) + out_cw + out_hc) * (1.0 / 3.0)


class ChannelAttention(nn.Module):
    """CBAM channel part: shared 1x1-conv MLP over average- and max-pooled features."""

    def __init__(self, channels: int, ratio: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // ratio, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // ratio, channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        avg = self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        peak = self.fc2(torch.relu(self.fc1(x.amax(dim=(2, 3), keepdim=True))))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    """CBAM spatial part: channel mean and max -> 7x7 conv -> sigmoid."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1)
        return torch.sigmoid(self.conv1(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, ratio: int):
        super().__init__()
        self.ca = ChannelAttention(channels, ratio)
        self.sa = SpatialAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.ca(x)
        return x * self.sa(x)


class Up(nn.Module):
    """The cloud's entry: re-expands the few transmitted channels (no spatial upsampling)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def funnel(
    in_channels: int,
    mid_channels: int,
    out_channels: int,
    *,
    first_kernel: int = 1,
    first_bias: bool = True,
    pool: bool = False,
) -> nn.Sequential:
    """The funnel: squeeze to a few channels, then small 1x1/3x3/5x5 convs ending in ReLU.

    With `pool` a 2x2 max-pool follows the first squeeze (the CNN backbone), which shifts the
    later indices by one exactly as in the official `block2_mix`.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, mid_channels, first_kernel, padding=first_kernel // 2, bias=first_bias),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    layers += [
        nn.Conv2d(mid_channels, out_channels, 1),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.SiLU(),
        nn.Conv2d(out_channels, out_channels, 1),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.Conv2d(out_channels, out_channels, 5, padding=2),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers)


def conv_bn_relu_pool(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv3x3 + BN + ReLU + MaxPool2; indices 0 (conv) and 1 (BN) as in the official blocks."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2, 2),
    )
