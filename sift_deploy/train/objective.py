"""The training objectives.

SiftFunnel (paper arXiv 2501.00824, official project_infodr_v4.py):

    L = alpha * KL(y_smooth || softmax) + beta * dCor^2(x, z) + l1 * mean|z| + gamma * R_pearson(z)

NoPeek (Vepakomma et al. 2020, "NoPeek: Information leakage reduction to share activations in
distributed deep learning"), the baseline on the unprotected architecture:

    L = CE(y, softmax) + beta * dCor^2(x, z)

x is the (normalised) input batch, z the transmitted features, y_smooth the label-smoothed target.
Both use the same squared sample distance correlation over the batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ObjectiveWeights:
    """Official defaults: alpha 5, beta 2, gamma 2, L1 0.03, smoothing 0.25."""

    alpha: float = 5.0
    beta: float = 2.0
    gamma: float = 2.0
    l1: float = 0.03
    smoothing: float = 0.25

    def as_dict(self) -> dict:
        return asdict(self)


def smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """1 - s on the true class and s / (K - 1) on each other class."""
    off = smoothing / (num_classes - 1)
    target = torch.full((len(labels), num_classes), off, dtype=torch.float32, device=labels.device)
    return target.scatter_(1, labels[:, None], 1.0 - smoothing)


def label_smoothing_kl(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    target = smoothed_targets(labels, logits.shape[1], smoothing)
    return F.kl_div(F.log_softmax(logits, dim=1), target, reduction="batchmean")


def _centred_distances(flat: torch.Tensor) -> torch.Tensor:
    # |a|^2 + |b|^2 - 2 a.b: one matrix product instead of an (n, n, d) difference tensor, which made dCor
    # a third of a SiftFunnel training step (about 100x slower; same value and gradient within 1e-5). The
    # diagonal is set to exactly 0: its rounding noise would pass through sqrt's huge slope near 0.
    sq = (flat * flat).sum(1)
    squared = (sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T).clamp_min(0.0)
    squared = squared.masked_fill(torch.eye(len(flat), dtype=torch.bool, device=flat.device), 0.0)
    dist = torch.sqrt(squared + 1e-10)
    return dist - dist.mean(0, keepdim=True) - dist.mean(1, keepdim=True) + dist.mean()


def distance_correlation_sq(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Squared sample distance correlation dCor^2_n(x, z) in [0, 1] over the batch (samples flattened)."""
    a = _centred_distances(x.reshape(len(x), -1))
    b = _centred_distances(z.reshape(len(z), -1))
    v_xy, v_xx, v_yy = (a * b).mean(), (a * a).mean(), (b * b).mean()
    return v_xy / torch.sqrt(v_xx * v_yy + 1e-20)


def pearson_channel_penalty(z: torch.Tensor) -> torch.Tensor:
    """Mean squared Pearson correlation between channels of each sample, over the HxW positions.

    The diagonal is included, as in the official code; it is a constant ~((HW-1)/HW)^2 where a
    channel varies, so only inter-channel correlation receives a gradient.
    """
    n, c = z.shape[:2]
    flat = z.reshape(n, c, -1)
    centred = flat - flat.mean(-1, keepdim=True)
    cov = centred @ centred.transpose(1, 2) / flat.shape[-1]
    std = flat.std(-1)
    corr = cov / (std[:, :, None] * std[:, None, :] + 1e-12)
    return corr.pow(2).mean()


def siftfunnel_loss(
    logits: torch.Tensor, labels: torch.Tensor, x: torch.Tensor, z: torch.Tensor, w: ObjectiveWeights
) -> tuple[torch.Tensor, dict[str, float]]:
    task = label_smoothing_kl(logits, labels, w.smoothing)
    dcor = distance_correlation_sq(x, z)
    l1 = z.abs().mean()
    pearson = pearson_channel_penalty(z)
    total = w.alpha * task + w.beta * dcor + w.l1 * l1 + w.gamma * pearson
    terms = {"task": task.item(), "dcor2": dcor.item(), "l1": l1.item(), "pearson": pearson.item()}
    return total, terms


def nopeek_loss(
    logits: torch.Tensor, labels: torch.Tensor, x: torch.Tensor, z: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy plus beta * dCor^2(x, z) at the cut (NoPeek)."""
    ce = F.cross_entropy(logits, labels)
    dcor = distance_correlation_sq(x, z)
    total = ce + beta * dcor
    return total, {"ce": ce.item(), "dcor2": dcor.item()}


def plain_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    ce = F.cross_entropy(logits, labels)
    return ce, {"ce": ce.item()}
