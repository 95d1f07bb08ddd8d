"""The black-box inverse-network attack: learn a decoder z -> x from the attacker's own pairs.

The attacker queries the deployed edge with its auxiliary images (the `aux` split), records the
features z it sends, and trains a decoder on (z_aux, x_aux) with pixel MSE against the [0, 1]
image at model size (the model itself saw the normalised image). The decoder is then applied to
the features of private images (the `test` split). The features can come from any runtime: this
module only sees numpy arrays.

Architecture: the "common decoder" of research/attack-anchors.md §1, which adapts to the feature
shape (C x h x w) and the image shape (C_img x S x S):

    ConvT3x3(C -> W) + BN + ReLU                     at h x w
    k times: ConvT4s2(W/2^(i-1) -> W/2^i) + BN + ReLU   doubling the side, k = log2(S / h)
    [bilinear resize to S x S if h * 2^k != S]
    Conv3x3(-> C_img) + Sigmoid

With W = 128 and z = 12x8x8 -> 1x32x32 this is exactly the anchor's decoder (128 -> 64 -> 32).
Features are divided by their RMS over the training pairs (a stored constant), so raw integer
features (a quantized runtime's output) train the same as dequantized ones.

Training: Adam, learning rate decayed per step on a cosine to zero (the anchor's constant-LR
snapshots swung by up to 0.067 SSIM between seeds; cosine brought that to 0.02 and raised the
attack's strength). The seed fixes both the initial weights and the batch order. Defaults: batch
32, peak lr 2e-3, measured on the reference models (5000 aux pairs, width 128, 2000 test images,
seed 0): against the unprotected twin, 4 epochs at batch 32 / lr 2e-3 reach SSIM 0.874 in ~29 s
on 2 cores, where batch 128 / lr 1e-3 (the anchor's setting) reaches 0.728 in 6 epochs; more,
smaller steps beat more data per step at equal compute.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..errors import SiftError
from .common import OnStep, ProgressReport, as_features, as_images, check_pairs, torch_seed

DEFAULT_WIDTH = 128
MIN_WIDTH = 16


@dataclass(frozen=True)
class DecoderRecord:
    """How a decoder was trained (recorded with every result it produces)."""

    seed: int
    epochs: int
    width: int
    batch_size: int
    lr: float
    schedule: str
    train_pairs: int
    steps: int
    final_loss: float  # mean pixel MSE over the last epoch's batches
    seconds: float
    feature_shape: tuple[int, ...]
    image_shape: tuple[int, ...]
    parameters: int

    def as_dict(self) -> dict:
        return asdict(self)


def _upsampling_stages(side: int, target: int) -> int:
    stages = 0
    while side * 2 <= target:
        side *= 2
        stages += 1
    return stages


class InverseDecoder(nn.Module):
    """Transposed-conv decoder from features (C, h, w) to images (C_img, S, S) in [0, 1]."""

    def __init__(self, feature_shape: tuple[int, int, int], image_shape: tuple[int, int, int],
                 width: int = DEFAULT_WIDTH):
        super().__init__()
        c, h, w = (int(v) for v in feature_shape)
        out_c, size, size_w = (int(v) for v in image_shape)
        if size != size_w:
            raise SiftError(f"the decoder reconstructs square images; got {size}x{size_w}")
        if width < MIN_WIDTH:
            raise SiftError(f"decoder width {width} is below the minimum {MIN_WIDTH}")
        self.feature_shape = (c, h, w)
        self.image_shape = (out_c, size, size)
        stages = _upsampling_stages(min(h, w), size)
        widths = [max(MIN_WIDTH, width // 2 ** i) for i in range(stages + 1)]
        layers: list[nn.Module] = [nn.ConvTranspose2d(c, widths[0], 3, padding=1), nn.BatchNorm2d(widths[0]), nn.ReLU()]
        for i in range(1, stages + 1):
            layers += [nn.ConvTranspose2d(widths[i - 1], widths[i], 4, stride=2, padding=1),
                       nn.BatchNorm2d(widths[i]), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.resize = (h * 2 ** stages, w * 2 ** stages) != (size, size)
        self.head = nn.Conv2d(widths[-1], out_c, 3, padding=1)
        self.register_buffer("input_scale", torch.ones(()))
        self.record: DecoderRecord | None = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.body(z * self.input_scale)
        if self.resize:
            x = nn.functional.interpolate(x, size=self.image_shape[1:], mode="bilinear", align_corners=False)
        return torch.sigmoid(self.head(x))


def cosine_to_zero(step: int, total: int) -> float:
    """Learning-rate factor after `step` of `total` optimiser steps: 1 at the start, 0 at the end."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def train_decoder(
    z: object,
    x: object,
    seed: int,
    epochs: int,
    width: int = DEFAULT_WIDTH,
    batch_size: int = 32,
    lr: float = 2e-3,
    on_step: OnStep | None = None,
    init: InverseDecoder | None = None,
) -> InverseDecoder:
    """Train an inverse decoder on attacker pairs (z_aux, x_aux); x in [0, 1], (N, C, S, S).

    `init` warm-starts from a copy of another decoder's weights (same shapes and width; it is not
    modified); the seed then fixes only the batch order. Returns the decoder in eval mode;
    `decoder.record` says how it was trained."""
    feats = as_features(z, "attack features z")
    images = as_images(x, "attack images x")
    check_pairs(feats, images, "features and images", minimum=2)
    if epochs < 1:
        raise SiftError(f"decoder epochs must be at least 1, got {epochs}")
    if batch_size < 2:
        raise SiftError(f"decoder batch size must be at least 2 (BatchNorm), got {batch_size}")
    n = len(feats)
    batch_size = min(batch_size, n)
    # Batches of one would break BatchNorm: fold a one-sample tail into the batch before it.
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    bounds = [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]
    total = epochs * len(bounds)

    rms = float(np.sqrt(np.mean(np.square(feats, dtype=np.float64))))
    with torch_seed(seed):
        decoder = InverseDecoder(feats.shape[1:], images.shape[1:], width)
    if init is not None:
        if (tuple(init.feature_shape), tuple(init.image_shape)) != (decoder.feature_shape, decoder.image_shape):
            raise SiftError(f"cannot warm-start: the initial decoder maps {tuple(init.feature_shape)} -> "
                            f"{tuple(init.image_shape)}, these pairs are {decoder.feature_shape} -> {decoder.image_shape}")
        try:
            decoder.load_state_dict(init.state_dict())
        except RuntimeError as exc:
            raise SiftError(f"cannot warm-start from a decoder of another width: {exc}") from exc
    decoder.input_scale.fill_(1.0 / rms if rms > 0 else 1.0)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_to_zero(step, total))
    feats_t, images_t = torch.from_numpy(feats), torch.from_numpy(images)
    rng = np.random.default_rng(seed)
    decoder.train()
    start, step, epoch_loss = time.perf_counter(), 0, 0.0
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(n))
        epoch_loss = 0.0
        for lo, hi in bounds:
            idx = order[lo:hi]
            loss = nn.functional.mse_loss(decoder(feats_t[idx]), images_t[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            epoch_loss += loss.item()
            if on_step is not None:
                on_step(ProgressReport("decoder", step, total, {"epoch": epoch + 1, "loss": loss.item()}))
    decoder.eval()
    decoder.record = DecoderRecord(
        seed=int(seed), epochs=int(epochs), width=int(width), batch_size=int(batch_size), lr=float(lr),
        schedule="adam, per-step cosine decay to zero" + (", warm start" if init is not None else ""),
        train_pairs=n, steps=step,
        final_loss=epoch_loss / len(bounds), seconds=round(time.perf_counter() - start, 3),
        feature_shape=tuple(feats.shape[1:]), image_shape=tuple(images.shape[1:]),
        parameters=sum(p.numel() for p in decoder.parameters()),
    )
    return decoder


def reconstruct(decoder: InverseDecoder, z: object, batch_size: int = 1000) -> np.ndarray:
    """Apply a trained decoder to features; returns float32 images (N, C, S, S) in [0, 1]."""
    feats = as_features(z, "features z")
    if tuple(feats.shape[1:]) != tuple(decoder.feature_shape):
        raise SiftError(f"features have shape {tuple(feats.shape[1:])} but the decoder was trained on "
                        f"{tuple(decoder.feature_shape)}; attack the same split point")
    decoder.eval()
    out = np.empty((len(feats), *decoder.image_shape), np.float32)
    with torch.inference_mode():
        for i in range(0, len(feats), batch_size):
            out[i:i + batch_size] = decoder(torch.from_numpy(feats[i:i + batch_size])).numpy()
    return out
