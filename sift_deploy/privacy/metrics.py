"""Reconstruction metrics, their intervals, the gate's paired statistic and the reference baselines.

Conventions (and the official-code bugs they avoid, research/siftfunnel.md §6.3):
- Every metric is computed **per image** on [0, 1] images at model size, then averaged over images.
- MSE divides the squared error by C*H*W (the official code forgot C, tripling RGB MSE).
- PSNR = 10 log10(1 / MSE) with data range 1. Identical images would give +inf, which breaks
  means and intervals, so PSNR is capped at `PSNR_CAP_DB` = 100 dB (MSE 1e-10). Real
  reconstructions sit far below the cap: even rounding a [0, 1] image to 8 bits costs ~59 dB.
- SSIM is `skimage.metrics.structural_similarity(x, x_hat, data_range=1)` with skimage's defaults
  (7x7 uniform window, sample covariance), per image (the official code ran it once on the whole
  batch), with `channel_axis=0` for RGB. It includes the zero border of padded 28->32 images.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..errors import SiftError
from .common import as_float_array, as_images

PSNR_CAP_DB = 100.0
METRICS = ("mse", "psnr", "ssim")
HIGHER_IS_LEAKIER = {"mse": False, "psnr": True, "ssim": True}
DEFAULT_RESAMPLES = 2000


def _pair(x: object, x_hat: object) -> tuple[np.ndarray, np.ndarray]:
    x, x_hat = as_images(x, "original images"), as_float_array(x_hat, "reconstructions")
    if x_hat.ndim == 3:
        x_hat = x_hat[:, None]
    if x.shape != x_hat.shape:
        raise SiftError(f"reconstructions have shape {x_hat.shape} but the originals {x.shape}; they must match")
    return x, np.clip(x_hat, 0.0, 1.0)


def per_image_mse(x: object, x_hat: object) -> np.ndarray:
    """Mean squared error of each image over its C*H*W values (float64, shape (N,))."""
    x, x_hat = _pair(x, x_hat)
    diff = x.astype(np.float64) - x_hat.astype(np.float64)
    return np.mean(diff.reshape(len(x), -1) ** 2, axis=1)


def psnr_from_mse(mse: np.ndarray) -> np.ndarray:
    """PSNR in dB for data range 1, capped at PSNR_CAP_DB (so identical images give the cap, not inf)."""
    floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
    return 10.0 * np.log10(1.0 / np.maximum(np.asarray(mse, np.float64), floor))


def per_image_psnr(x: object, x_hat: object) -> np.ndarray:
    return psnr_from_mse(per_image_mse(x, x_hat))


def per_image_ssim(x: object, x_hat: object) -> np.ndarray:
    """skimage SSIM of each image (data_range 1, default 7x7 window; RGB via channel_axis=0)."""
    from skimage.metrics import structural_similarity

    x, x_hat = _pair(x, x_hat)
    if min(x.shape[-2:]) < 7:
        raise SiftError(f"SSIM needs images of at least 7x7 pixels; got {x.shape[-2]}x{x.shape[-1]}")
    out = np.empty(len(x), np.float64)
    rgb = x.shape[1] == 3
    for i in range(len(x)):
        if rgb:
            out[i] = structural_similarity(x[i], x_hat[i], data_range=1.0, channel_axis=0)
        else:
            out[i] = structural_similarity(x[i, 0], x_hat[i, 0], data_range=1.0)
    return out


@dataclass(frozen=True)
class Interval:
    """A mean with a confidence interval [low, high] at `level`."""

    mean: float
    low: float
    high: float
    level: float
    n: int
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_mean(values: object, level: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> Interval:
    """Mean of `values` with a percentile-bootstrap interval over them (seeded, so deterministic)."""
    values = np.asarray(values, np.float64).reshape(-1)
    if len(values) == 0:
        raise SiftError("cannot average zero values")
    if not 0.0 < level < 1.0:
        raise SiftError(f"confidence level must lie in (0, 1), got {level}")
    if not np.isfinite(values).all():
        raise SiftError("values to average contain NaN or infinite entries")
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty(resamples, np.float64)
    chunk = max(1, 2_000_000 // n)  # bound the index matrix to ~16 MB
    for lo in range(0, resamples, chunk):
        hi = min(resamples, lo + chunk)
        means[lo:hi] = values[rng.integers(0, n, size=(hi - lo, n))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(values.mean()), float(low), float(high), level, n,
                    f"percentile bootstrap over images, {resamples} resamples, seed {seed}")


@dataclass
class ImageScores:
    """Per-image MSE, PSNR (dB) and SSIM of one set of reconstructions."""

    mse: np.ndarray
    psnr: np.ndarray
    ssim: np.ndarray

    def __len__(self) -> int:
        return len(self.mse)

    def metric(self, name: str) -> np.ndarray:
        if name not in METRICS:
            raise SiftError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}")
        return getattr(self, name)

    def summary(self, level: float = 0.95, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Interval]:
        return {name: bootstrap_mean(self.metric(name), level, resamples, seed) for name in METRICS}


def score_images(x: object, x_hat: object) -> ImageScores:
    """All per-image metrics of reconstructions `x_hat` of the originals `x` (both in [0, 1])."""
    mse = per_image_mse(x, x_hat)
    return ImageScores(mse=mse, psnr=psnr_from_mse(mse), ssim=per_image_ssim(x, x_hat))


# --------------------------------------------------------------------------------------------------
# The gate's statistic


@dataclass(frozen=True)
class PairedDifference:
    """Seed-averaged paired per-image difference (deployed - float) with a seeds-and-images interval."""

    mean: float
    low: float
    high: float
    level: float
    se: float
    seed_se: float | None  # None when one seed per side cannot resolve decoder-seed noise
    image_se: float
    df: float
    seeds: int
    images: int
    per_seed: tuple[float, ...]
    method: str

    @property
    def seeds_resolved(self) -> bool:
        return self.seed_se is not None

    def upper_bound(self, level: float = 0.95) -> float:
        """One-sided upper confidence bound on the mean difference (what a "no increase" gate reads)."""
        from scipy.stats import t

        return float(self.mean + t.ppf(level, self.df) * self.se) if self.se > 0 else self.mean

    def as_dict(self) -> dict:
        d = asdict(self)
        d["per_seed"] = list(self.per_seed)
        d["seeds_resolved"] = self.seeds_resolved
        return d


def paired_difference(deployed: Sequence[object], reference: Sequence[object], level: float = 0.95) -> PairedDifference:
    """Gate statistic: deployed minus float (`reference`), paired by decoder seed and by image.

    `deployed[s]` and `reference[s]` are per-image scores (N,) of the same N test images from
    decoders trained with the same seed s (same initial weights and batch order) on deployed and
    on float features. The statistic is the mean over seeds and images of
    D[s, i] = deployed[s][i] - reference[s][i].

    Interval. Model D[s, i] = mu + a_s + b_i + e_si: a_s is decoder-training noise (one draw per
    seed pair), b_i the image effect (shared by all seeds, since they score the same images), e_si
    the rest. The mean's variance is var(a)/k + var(b)/N + var(e)/(kN). research/attack-anchors.md
    §4 measured the seed part 10-100x larger than the image part, so:
    - a bootstrap over images alone sees only b and e and is far too narrow (nulls excluded 0);
    - a bootstrap over seeds with the k = 3 seeds that fit the budget is degenerate: it has 10
      distinct resamples, its percentile interval never leaves the range of the k seed means, and
      the true mean lies outside the range of 3 normal draws with probability 2 * (1/2)^3 = 25%
      (coverage <= 75%, not 95%);
    - a t-interval over the k per-seed paired means D[s, .] is exact for normal seed effects and
      accounts for small k through k - 1 degrees of freedom, but b's mean is common to all seeds
      and invisible in their spread.
    So: se^2 = s^2(per-seed means) / k + s^2(seed-averaged per-image differences) / N, the second
    term restoring the image-sampling part (it also counts var(e)/(kN) once more: slightly
    conservative), with Welch-Satterthwaite degrees of freedom. With one seed per side the seed
    part cannot be estimated: `seed_se` is None and the interval covers image sampling only, which
    understates the noise (use a wider tolerance, e.g. +0.05 SSIM instead of +0.03).
    """
    from scipy.stats import t

    if len(deployed) != len(reference):
        raise SiftError(f"the deployed side has {len(deployed)} seeds and the float side {len(reference)}; "
                        "use the same seed list on both sides")
    if len(deployed) == 0:
        raise SiftError("the paired difference needs at least one seed per side")
    d_rows = [np.asarray(v, np.float64).reshape(-1) for v in deployed]
    r_rows = [np.asarray(v, np.float64).reshape(-1) for v in reference]
    sizes = {len(v) for v in d_rows + r_rows}
    if len(sizes) != 1:
        raise SiftError(f"per-image scores differ in length ({sorted(sizes)}); score the same test images on both sides")
    diff = np.stack(d_rows) - np.stack(r_rows)
    if not np.isfinite(diff).all():
        raise SiftError("per-image scores contain NaN or infinite values")
    k, n = diff.shape
    if n < 2:
        raise SiftError("the paired difference needs at least two test images")
    per_seed = diff.mean(axis=1)
    per_image = diff.mean(axis=0)
    image_var = per_image.var(ddof=1) / n
    if k >= 2:
        seed_var = per_seed.var(ddof=1) / k
        denom = (seed_var ** 2 / (k - 1) if seed_var > 0 else 0.0) + (image_var ** 2 / (n - 1) if image_var > 0 else 0.0)
        df = (seed_var + image_var) ** 2 / denom if denom > 0 else float(k - 1)
        seed_se: float | None = float(np.sqrt(seed_var))
        method = (f"t-interval, se^2 = var(per-seed means)/k + var(per-image means)/N, "
                  f"Welch-Satterthwaite df; k={k} seeds, N={n} images")
    else:
        seed_var, df, seed_se = 0.0, float(n - 1), None
        method = f"t-interval over {n} images only: one seed per side does not resolve decoder-seed noise"
    se = float(np.sqrt(seed_var + image_var))
    mean = float(diff.mean())
    half = float(t.ppf(0.5 + level / 2.0, df) * se) if se > 0 else 0.0
    return PairedDifference(mean=mean, low=mean - half, high=mean + half, level=level, se=se, seed_se=seed_se,
                            image_se=float(np.sqrt(image_var)), df=float(df), seeds=k, images=n,
                            per_seed=tuple(float(v) for v in per_seed), method=method)


# --------------------------------------------------------------------------------------------------
# Reference baselines: what an attacker gets with no features at all, or with the label only.


def no_information_reconstruction(aux_images: object, count: int) -> np.ndarray:
    """The aux mean image, repeated `count` times: the best guess without any information."""
    aux = as_images(aux_images, "aux images")
    return np.repeat(aux.mean(axis=0, keepdims=True), count, axis=0)


def label_only_reconstruction(aux_images: object, aux_labels: object, labels: object) -> np.ndarray:
    """For each true label, the mean aux image of that class (the label-only oracle).

    A class absent from aux falls back to the overall aux mean. An attack that does not clearly beat
    this learned the class and nothing else."""
    aux = as_images(aux_images, "aux images")
    aux_labels = np.asarray(aux_labels).reshape(-1)
    labels = np.asarray(labels).reshape(-1)
    if len(aux_labels) != len(aux):
        raise SiftError(f"{len(aux)} aux images but {len(aux_labels)} aux labels")
    overall = aux.mean(axis=0)
    means = {c: aux[aux_labels == c].mean(axis=0) for c in np.unique(aux_labels)}
    return np.stack([means.get(c, overall) for c in labels]).astype(np.float32)
