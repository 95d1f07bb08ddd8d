"""Export forms of the attention blocks: the same function, in ops that ONNX Runtime's CPU kernels run fast.

Profiling the faithful export in ORT (1 thread, batch 1) shows that most of the edge's time goes to
three things that are cheap in FLOPs:

- the 7x7 convolutions with 2 input and 1 output channel in the attention gates (TripletAttention,
  CBAM's spatial part): ORT's NCHWc kernels pad the single output channel to a block of 16, and the
  im2col path is no better, so a 100 k-MAC conv takes ~70 us (~1 GMAC/s);
- the four full-size transposes of TripletAttention's permuted branches;
- three full-size broadcast multiplies and two adds to combine the branches.

The rewrites below compute the same function (fp32 rounding differences only, ~1e-7 relative):

- *folded plane conv*: a KxK conv over a plane (A, B) with 2 -> 1 channels equals a 1-D conv along
  B whose input channels are the (2, A) rows and whose A output channels are the output rows; the
  weight is a banded block matrix built from the KxK kernel. The input (N, 2, A, B) and output
  (N, 1, A, B) need only reshapes, and a 256 -> 128 channel 1xK conv runs at GEMM speed;
- TripletAttention without permutes: the (C, W) branch pools over H (`amax(2)`), the (H, C)
  branch pools over W (`amax(3)`) and convolves on the (C, H) plane with the kernel's axes swapped,
  so both gates come out in x's layout by a reshape; the three gates (each scaled by 1/3) are
  summed at their broadcast shapes and multiply x once;
- SqueezeExcite with 1x1 convs on (N, C, 1, 1) instead of Linear + two Unsqueeze.

BatchNorm after the gate convs is folded into the folded weights. `export_form` returns a rewritten
deep copy and leaves the model it was given untouched.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from ...models.blocks import SpatialAttention, SqueezeExcite, TripletAttention


GEMM_GATE_MAX_MACS = 1_000_000  # above this the GEMM that sums the gates costs more than broadcasting


def _conv_bn_weights(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of conv followed by eval-mode BN, as one conv."""
    weight = conv.weight.detach().clone()
    bias = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(weight.shape[0])
    if bn is not None:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - bn.running_mean.detach()) * scale + bn.bias.detach()
    return weight, bias


class FoldedPlaneConv(nn.Module):
    """A KxK conv with one output channel over a plane (A, B), run as a 1-D conv along B.

    Input channel ci and row a' of the plane become channel ci*A + a'; output row a becomes channel
    a: W'[a, ci*A + a', j] = K[ci, a' - a + K//2, j] inside the band and 0 outside it, which is
    exactly the zero padding along A. With `along="w"` the folded tensors are (N, Cin*A, 1, B) ->
    (N, A, 1, B); with `along="h"` they are (N, Cin*A, B, 1) -> (N, A, B, 1).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, rows: int, along: str = "w"):
        super().__init__()
        out_ch, in_ch, kh, kw = weight.shape
        if out_ch != 1 or kh % 2 == 0 or kw % 2 == 0 or along not in ("w", "h"):
            raise ValueError("FoldedPlaneConv needs one output channel, an odd kernel and along='w' or 'h'")
        folded = torch.zeros(rows, in_ch * rows, kw, dtype=weight.dtype)
        for a in range(rows):
            for i in range(kh):
                src = a + i - kh // 2
                if 0 <= src < rows:
                    for ci in range(in_ch):
                        folded[a, ci * rows + src, :] = weight[0, ci, i, :]
        shape = (rows, in_ch * rows, 1, kw) if along == "w" else (rows, in_ch * rows, kw, 1)
        self.padding = (0, kw // 2) if along == "w" else (kw // 2, 0)
        self.weight = nn.Parameter(folded.reshape(shape), requires_grad=False)
        self.bias = nn.Parameter(bias.detach().clone().expand(rows).contiguous(), requires_grad=False)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        return F.conv2d(p, self.weight, self.bias, padding=self.padding)


class TripletAttentionExport(nn.Module):
    """TripletAttention with pooled tensors in x's own layout, no full-size permutes.

    Keep-dim pooling concatenated along the channels is already the folded layout: the (C, W)
    branch's (N, 2C, 1, W) and the (C, H) branch's (N, 2C, H, 1); their gates come out as
    (N, C, 1, W) and (N, C, H, 1). The three gates are summed into one (N, C, H, W) gate, by a small
    GEMM where that is cheap (16x16 planes) or by two broadcast adds (32x32 planes; measured both
    ways in ORT), and multiply x once.
    """

    def __init__(self, block: TripletAttention, channels: int, height: int, width: int):
        super().__init__()
        w_hw, b_hw = _conv_bn_weights(block.hw.conv.conv, block.hw.conv.bn)
        w_cw, b_cw = _conv_bn_weights(block.cw.conv.conv, block.cw.conv.bn)
        w_hc, b_hc = _conv_bn_weights(block.hc.conv.conv, block.hc.conv.bn)
        self.channels, self.height, self.width = channels, height, width
        self.hw = FoldedPlaneConv(w_hw, b_hw, height, along="w")  # plane (H, W)
        self.cw = FoldedPlaneConv(w_cw, b_cw, channels, along="w")  # plane (C, W), pooled over H
        # The official (H, C) branch convolves on the (H, C) plane; on the (C, H) plane the kernel's
        # two spatial axes swap.
        self.hc = FoldedPlaneConv(w_hc.transpose(2, 3).contiguous(), b_hc, channels, along="h")
        self.register_buffer("spread", None)
        if (width + height) * height * width * channels <= GEMM_GATE_MAX_MACS:
            spread = torch.zeros(width + height, height * width)
            for row in range(height):
                for col in range(width):
                    spread[col, row * width + col] = 1.0 / 3.0
                    spread[width + row, row * width + col] = 1.0 / 3.0
            self.register_buffer("spread", spread)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.channels, self.height, self.width
        third = 1.0 / 3.0
        p_hw = torch.cat((x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)), dim=1).reshape(-1, 2 * h, 1, w)
        p_cw = torch.cat((x.amax(dim=2, keepdim=True), x.mean(dim=2, keepdim=True)), dim=1)  # (N, 2C, 1, W)
        p_hc = torch.cat((x.amax(dim=3, keepdim=True), x.mean(dim=3, keepdim=True)), dim=1)  # (N, 2C, H, 1)
        if self.spread is not None:
            # gate[c, h, w] = (g_cw[c, w] + g_hc[c, h]) / 3 + g_hw[h, w] / 3: a small GEMM with a 0/(1/3)
            # selection matrix replaces two full-size broadcast adds (slow in ORT at these shapes).
            g_hw = torch.sigmoid(self.hw(p_hw)).reshape(-1, 1, h * w) * third
            g_cw = torch.sigmoid(self.cw(p_cw)).reshape(-1, c, w)
            g_hc = torch.sigmoid(self.hc(p_hc)).reshape(-1, c, h)
            gate = torch.matmul(torch.cat((g_cw, g_hc), dim=2), self.spread) + g_hw
            return x * gate.reshape(-1, c, h, w)
        g_hw = (torch.sigmoid(self.hw(p_hw)) * third).reshape(-1, 1, h, w)
        g_cw = torch.sigmoid(self.cw(p_cw)) * third  # (N, C, 1, W)
        g_hc = torch.sigmoid(self.hc(p_hc)) * third  # (N, C, H, 1)
        return x * ((g_cw + g_hc) + g_hw)


class SqueezeExciteExport(nn.Module):
    """SqueezeExcite with 1x1 convs on the pooled (N, C, 1, 1) tensor."""

    def __init__(self, block: SqueezeExcite):
        super().__init__()
        first, second = block.fc[0], block.fc[2]
        self.register_buffer("w1", first.weight.detach()[:, :, None, None].clone())
        self.register_buffer("w2", second.weight.detach()[:, :, None, None].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = torch.sigmoid(F.conv2d(torch.relu(F.conv2d(x.mean(dim=(2, 3), keepdim=True), self.w1)), self.w2))
        return x * g


class SpatialAttentionExport(nn.Module):
    """CBAM's spatial gate with its 7x7 2 -> 1 conv folded."""

    def __init__(self, block: SpatialAttention, height: int, width: int):
        super().__init__()
        weight, bias = _conv_bn_weights(block.conv1, None)
        self.height, self.width = height, width
        self.conv = FoldedPlaneConv(weight, bias, height, along="w")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.height, self.width
        pooled = torch.cat((x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)), dim=1).reshape(-1, 2 * h, 1, w)
        return torch.sigmoid(self.conv(pooled)).reshape(-1, 1, h, w)


def _input_shapes(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, (TripletAttention, SpatialAttention)):
            hooks.append(module.register_forward_pre_hook(
                lambda mod, args, name=name: shapes.__setitem__(name, tuple(args[0].shape))))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def export_form(model: nn.Module, input_shape: tuple[int, int, int]) -> tuple[nn.Module, list[str]]:
    """A rewritten deep copy of `model` (eval mode) and the names of the blocks that were rewritten."""
    model = copy.deepcopy(model).eval()
    shapes = _input_shapes(model, torch.zeros(1, *input_shape))
    replaced: list[str] = []
    for name, module in list(model.named_modules()):
        if isinstance(module, TripletAttention) and name in shapes:
            _, c, h, w = shapes[name]
            new: nn.Module = TripletAttentionExport(module, c, h, w)
        elif isinstance(module, SqueezeExcite):
            new = SqueezeExciteExport(module)
        elif isinstance(module, SpatialAttention) and name in shapes:
            new = SpatialAttentionExport(module, shapes[name][2], shapes[name][3])
        else:
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
        replaced.append(f"{name}: {type(module).__name__} -> {type(new).__name__}")
    return model.eval(), replaced


__all__ = ["export_form", "FoldedPlaneConv", "TripletAttentionExport", "SqueezeExciteExport", "SpatialAttentionExport"]
