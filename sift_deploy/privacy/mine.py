"""MINE: a neural lower bound on the mutual information I(x; z) in nats (Belghazi et al. 2018).

Donsker-Varadhan bound, for any critic T:

    I(x; z) >= E_p(x,z)[T(x, z)] - log E_p(x)p(z)[exp T(x, z)]

The critic's output is an **unbounded** real number. The official ConvMINE ends in a Sigmoid, so
its T lies in (0, 1) and its estimate can never reach 1 nat whatever the true MI
(research/siftfunnel.md §5); nothing here bounds T.

Critic: an encoder for x and one for z (strided convs for images and feature maps, an MLP for
vectors), each to a 64-d embedding, and a head MLP on the pair:
T(x, z) = w . ELU(A e_x + B e_z + c) + d. Because the head's first layer splits into an x part and a
z part, T can be evaluated on all B x B pairs of a batch at the cost of B encoder passes: the
diagonal gives the joint samples, the B(B - 1) off-diagonal pairs the product of marginals.

Training: Adam; the gradient of the log-partition term is bias-corrected with an exponential moving
average of E[exp T] (MINE's correction; `bias_correction=False` gives plain DV). Inputs are
standardised with constants fitted on the training pairs (MI does not change under invertible
maps). The seed fixes initial weights and batch order.

Evaluation on held-out pairs, split in two by the seed: after each epoch the bound is computed on
the validation half; the critic of the best validation epoch is then scored on the other half,
which is the reported estimate. Picking the best epoch on the same pairs that are reported would
bias the estimate upwards; a held-out bound is a lower bound up to sampling noise (it can come out
slightly below zero for independent x and z).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..errors import SiftError
from .common import OnStep, ProgressReport, as_float_array, check_pairs, torch_seed

EMBED_DIM = 64
HIDDEN = 128


class _Encoder(nn.Module):
    """Images or feature maps (C, H, W) -> strided convs down to <= 4x4 -> linear; vectors (D,) -> MLP."""

    def __init__(self, shape: tuple[int, ...], dim: int = EMBED_DIM):
        super().__init__()
        if len(shape) == 1:
            self.net = nn.Sequential(nn.Linear(shape[0], HIDDEN), nn.ELU(), nn.Linear(HIDDEN, HIDDEN), nn.ELU(),
                                     nn.Linear(HIDDEN, dim))
            return
        channels, height, width = shape
        layers: list[nn.Module] = []
        widths = iter([32, 64, 64, 64, 64, 64, 64])
        c_in, side = channels, min(height, width)
        if side <= 4:
            c_out = next(widths)
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ELU()]
            c_in = c_out
        while side > 4:
            c_out = next(widths)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ELU()]
            c_in, side, height, width = c_out, (side + 1) // 2, (height + 1) // 2, (width + 1) // 2
        layers += [nn.Flatten(), nn.Linear(c_in * height * width, dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v)


class MineCritic(nn.Module):
    """T(x, z) with an unbounded output, evaluable on all pairs of two embedded batches."""

    def __init__(self, x_shape: tuple[int, ...], z_shape: tuple[int, ...]):
        super().__init__()
        self.encode_x = _Encoder(x_shape)
        self.encode_z = _Encoder(z_shape)
        self.mix_x = nn.Linear(EMBED_DIM, HIDDEN)
        self.mix_z = nn.Linear(EMBED_DIM, HIDDEN, bias=False)
        self.out = nn.Sequential(nn.ELU(), nn.Linear(HIDDEN, 1))

    def embed(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mix_x(self.encode_x(x)), self.mix_z(self.encode_z(z))

    def joint(self, hx: torch.Tensor, hz: torch.Tensor) -> torch.Tensor:
        """T(x_i, z_i) for matched rows."""
        return self.out(hx + hz).squeeze(-1)

    def pairs(self, hx: torch.Tensor, hz: torch.Tensor) -> torch.Tensor:
        """T(x_i, z_j) for all i, j: (len(hx), len(hz))."""
        return self.out(hx[:, None, :] + hz[None, :, :]).squeeze(-1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.joint(*self.embed(x, z))


@dataclass(frozen=True)
class MineResult:
    mi_nats: float  # DV bound on the held-out test half, critic of the best validation epoch
    validation_nats: float  # the bound on the validation half at that epoch
    best_epoch: int
    curve: tuple[float, ...]  # validation bound after each epoch
    seed: int
    epochs: int
    train_pairs: int
    validation_pairs: int
    test_pairs: int
    bias_correction: bool
    seconds: float
    estimator: str = "MINE, Donsker-Varadhan bound, unbounded critic, all off-diagonal pairs as marginal samples"
    # the trained critic's DV bound on other held-out pairs (same images, e.g. another model's z for
    # them), on the same test half: any critic gives a lower bound, so two critics can be compared
    bound_on: Callable[[object, object], float] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        d = {k: v for k, v in asdict(replace(self, bound_on=None)).items() if k != "bound_on"}
        d["curve"] = list(self.curve)
        return d


def _off_diagonal(t: torch.Tensor) -> torch.Tensor:
    n = t.shape[0]
    return t.masked_select(~torch.eye(n, dtype=torch.bool))


@torch.no_grad()
def donsker_varadhan(critic: MineCritic, x: torch.Tensor, z: torch.Tensor, chunk: int = 256) -> float:
    """DV bound on the pairs (x_i, z_i), with all (x_i, z_j), i != j, as marginal samples."""
    critic.eval()
    parts = [critic.embed(x[i:i + chunk], z[i:i + chunk]) for i in range(0, len(x), chunk)]
    hx, hz = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    n = len(x)
    joint = critic.joint(hx, hz).double().mean().item()
    lse_parts = []
    for lo in range(0, n, chunk):
        block = critic.pairs(hx[lo:lo + chunk], hz).double()
        rows = torch.arange(lo, min(n, lo + chunk))
        block[rows - lo, rows] = -math.inf
        lse_parts.append(torch.logsumexp(block.reshape(-1), 0))
    log_mean_marginal = torch.logsumexp(torch.stack(lse_parts), 0).item() - math.log(n * (n - 1))
    critic.train()
    return joint - log_mean_marginal


def _standardiser(train: np.ndarray) -> tuple[float, float]:
    mean = float(train.mean(dtype=np.float64))
    std = float(train.std(dtype=np.float64))
    return mean, std if std > 0 else 1.0


def _as_samples(values: object, name: str) -> np.ndarray:
    array = as_float_array(values, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim not in (2, 4):
        raise SiftError(f"{name} has shape {array.shape}; expected (N, D) vectors or (N, C, H, W) maps")
    return array


def estimate_mutual_information(
    x_train: object,
    z_train: object,
    x_heldout: object,
    z_heldout: object,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 128,
    lr: float = 1e-3,
    bias_correction: bool = True,
    ema_rate: float = 0.01,
    on_step: OnStep | None = None,
) -> MineResult:
    """Train a MINE critic on (x_train, z_train) and report its DV bound on held-out pairs, in nats."""
    xt, zt = _as_samples(x_train, "MINE x (train)"), _as_samples(z_train, "MINE z (train)")
    xh, zh = _as_samples(x_heldout, "MINE x (held out)"), _as_samples(z_heldout, "MINE z (held out)")
    check_pairs(xt, zt, "MINE training x and z", minimum=8)
    check_pairs(xh, zh, "MINE held-out x and z", minimum=8)
    if xt.shape[1:] != xh.shape[1:] or zt.shape[1:] != zh.shape[1:]:
        raise SiftError("MINE training and held-out pairs have different shapes")
    if epochs < 1:
        raise SiftError(f"MINE epochs must be at least 1, got {epochs}")
    mx, sx = _standardiser(xt)
    mz, sz = _standardiser(zt)

    def tensor(a: np.ndarray, m: float, s: float) -> torch.Tensor:
        return torch.from_numpy(((a - m) / s).astype(np.float32))

    xt_t, zt_t, xh_t, zh_t = tensor(xt, mx, sx), tensor(zt, mz, sz), tensor(xh, mx, sx), tensor(zh, mz, sz)
    rng = np.random.default_rng(seed)
    split = rng.permutation(len(xh))
    val_idx, test_idx = torch.from_numpy(split[: len(split) // 2]), torch.from_numpy(split[len(split) // 2:])
    with torch_seed(seed):
        critic = MineCritic(tuple(xt.shape[1:]), tuple(zt.shape[1:]))
    optimizer = torch.optim.Adam(critic.parameters(), lr=lr)

    n = len(xt)
    batch_size = max(2, min(batch_size, n))
    steps_per_epoch = n // batch_size
    total = epochs * steps_per_epoch
    log_ma: torch.Tensor | None = None
    curve: list[float] = []
    best = (-math.inf, 0, copy.deepcopy(critic.state_dict()))
    start, step = time.perf_counter(), 0
    critic.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(n))
        for b in range(steps_per_epoch):
            idx = order[b * batch_size:(b + 1) * batch_size]
            hx, hz = critic.embed(xt_t[idx], zt_t[idx])
            scores = critic.pairs(hx, hz)
            joint = scores.diagonal().mean()
            marginal = _off_diagonal(scores)
            log_mean_marginal = torch.logsumexp(marginal, 0) - math.log(marginal.numel())
            if bias_correction:
                current = log_mean_marginal.detach()
                log_ma = current if log_ma is None else torch.logaddexp(
                    math.log1p(-ema_rate) + log_ma, math.log(ema_rate) + current)
                # d/dθ of exp(lmm - log_ma) = E[exp T dT] / moving average of E[exp T]
                loss = -(joint - torch.exp(log_mean_marginal - log_ma))
            else:
                loss = -(joint - log_mean_marginal)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if on_step is not None:
                on_step(ProgressReport("mine", step, total, {
                    "epoch": epoch + 1, "train_bound": (joint - log_mean_marginal).item()}))
        value = donsker_varadhan(critic, xh_t[val_idx], zh_t[val_idx])
        curve.append(value)
        if value > best[0]:
            best = (value, epoch + 1, copy.deepcopy(critic.state_dict()))
    critic.load_state_dict(best[2])
    estimate = donsker_varadhan(critic, xh_t[test_idx], zh_t[test_idx])

    def bound_on(x_other: object, z_other: object) -> float:
        xo, zo = _as_samples(x_other, "MINE x (other)"), _as_samples(z_other, "MINE z (other)")
        if xo.shape != xh.shape or zo.shape != zh.shape:
            raise SiftError(f"a MINE critic trained on pairs {xh.shape} / {zh.shape} cannot score pairs {xo.shape} / {zo.shape}")
        return float(donsker_varadhan(critic, tensor(xo, mx, sx)[test_idx], tensor(zo, mz, sz)[test_idx]))
    return MineResult(mi_nats=float(estimate), validation_nats=float(best[0]), best_epoch=best[1], curve=tuple(curve),
                      seed=int(seed), epochs=int(epochs), train_pairs=n, validation_pairs=len(val_idx),
                      test_pairs=len(test_idx), bias_correction=bias_correction,
                      seconds=round(time.perf_counter() - start, 3), bound_on=bound_on)
