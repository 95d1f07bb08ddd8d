"""Cheap leakage statistics on features: distance correlation and the non-zero count of z.

- `distance_correlation_sq(x, z)`: the squared sample distance correlation dCor^2_n (Szekely et
  al. 2007), the same quantity the SiftFunnel objective minimises per batch
  (`sift_deploy.train.objective.distance_correlation_sq`), here on a larger seeded sample, in float64,
  with the pairwise distances built block by block (no N x N x D intermediate). It lies in [0, 1],
  is 0 only for independent x and z (in the population), and does not change under x -> a*x + b,
  so normalised and [0, 1] images give the same value.
- `nonzero_stats(z)`: the mean count of non-zero entries per transmitted sample, the official
  code's "delta z" and the paper's "effective information volume" (research/siftfunnel.md §5).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import SiftError
from .common import as_float_array

DEFAULT_DCOR_SAMPLES = 2000
_BLOCK = 256


def _flatten(values: object, name: str) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim < 1 or len(array) == 0:
        raise SiftError(f"{name} is empty")
    array = as_float_array(array, name) if array.dtype != np.float64 else array
    if not np.isfinite(array).all():
        raise SiftError(f"{name} contains NaN or infinite values")
    return array.reshape(len(array), -1).astype(np.float64)


def _centred_distances(flat: np.ndarray) -> np.ndarray:
    """Double-centred Euclidean distance matrix (N x N, float64), built in row blocks."""
    n = len(flat)
    sq = np.einsum("ij,ij->i", flat, flat)
    dist = np.empty((n, n), np.float64)
    for lo in range(0, n, _BLOCK):
        hi = min(n, lo + _BLOCK)
        block = sq[lo:hi, None] + sq[None, :] - 2.0 * flat[lo:hi] @ flat.T
        np.sqrt(np.maximum(block, 0.0), out=dist[lo:hi])
    np.fill_diagonal(dist, 0.0)
    row = dist.mean(axis=1)
    dist -= row[:, None]
    dist -= row[None, :]
    dist += row.mean()
    return dist


def distance_correlation_sq(x: object, z: object, max_samples: int = DEFAULT_DCOR_SAMPLES, seed: int = 0) -> float:
    """dCor^2_n(x, z) over at most `max_samples` pairs (a seeded subsample when there are more)."""
    xf, zf = _flatten(x, "images x"), _flatten(z, "features z")
    if len(xf) != len(zf):
        raise SiftError(f"x and z hold different numbers of samples ({len(xf)} and {len(zf)})")
    if len(xf) < 4:
        raise SiftError(f"distance correlation needs at least 4 pairs, got {len(xf)}")
    if len(xf) > max_samples:
        idx = np.sort(np.random.default_rng(seed).choice(len(xf), size=max_samples, replace=False))
        xf, zf = xf[idx], zf[idx]
    a = _centred_distances(xf)
    b = _centred_distances(zf)
    v_xy = float(np.mean(a * b))
    v_xx = float(np.mean(a * a))
    v_zz = float(np.mean(b * b))
    if v_xx <= 0.0 or v_zz <= 0.0:
        return 0.0  # a constant x or z carries no information about the other
    return max(0.0, v_xy / np.sqrt(v_xx * v_zz))


@dataclass(frozen=True)
class NonZeroStats:
    """Non-zero entries of the transmitted features, per sample."""

    mean_count: float  # the "effective information volume" (official "delta z")
    fraction: float  # mean_count / entries
    entries: int  # values per sample
    all_zero_samples: int  # samples whose features are entirely zero (nothing reaches the cloud)

    def as_dict(self) -> dict:
        return asdict(self)


def nonzero_stats(z: object, atol: float = 0.0) -> NonZeroStats:
    """Count entries with |z| > atol per sample (atol 0: exact zeros, what ReLU and int8 give)."""
    flat = as_float_array(z, "features z")
    if flat.ndim < 2 or len(flat) == 0:
        raise SiftError(f"features z have shape {flat.shape}; expected (N, ...) with N >= 1")
    flat = flat.reshape(len(flat), -1)
    counts = (np.abs(flat) > atol).sum(axis=1)
    entries = flat.shape[1]
    mean = float(counts.mean())
    return NonZeroStats(mean_count=mean, fraction=mean / entries, entries=int(entries),
                        all_zero_samples=int((counts == 0).sum()))


def distance_correlation(x: object, z: object, max_samples: int = DEFAULT_DCOR_SAMPLES, seed: int = 0) -> float:
    """dCor_n(x, z) = sqrt(dCor^2_n); reports usually quote the square (what training minimises)."""
    return float(np.sqrt(distance_correlation_sq(x, z, max_samples, seed)))
