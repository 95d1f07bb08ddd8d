"""A random perturbation of the transmitted features z, applied on the device after the edge artifact
and before the wire: the official SiftFunnel code's perturbation baselines (`--protect dp`: Gaussian
noise on z; `--protect drop`: a Bernoulli mask on z, unscaled).

The edge artifact stays deterministic (parity compares it unperturbed); whoever sends z applies
`perturb` with a fresh random generator per request. `check` applies it with a seeded generator, the
same draws on the float and the deployed side, so that their difference is the quantization's alone.
Numpy only: it runs on devices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import SiftError

WHERE = "on the device, after the edge artifact and before the wire: z + N(0, noise_std^2), then each element kept with probability 1 - drop_rate (unscaled)"


@dataclass(frozen=True)
class Perturbation:
    noise_std: float = 0.0
    drop_rate: float = 0.0

    def __post_init__(self):
        if not (np.isfinite(self.noise_std) and self.noise_std >= 0):
            raise SiftError(f"--feature-noise must be a standard deviation >= 0, got {self.noise_std}")
        if not (np.isfinite(self.drop_rate) and 0 <= self.drop_rate < 1):
            raise SiftError(f"--feature-dropout must be a rate in [0, 1), got {self.drop_rate}")

    @property
    def active(self) -> bool:
        return self.noise_std > 0 or self.drop_rate > 0

    def as_manifest(self) -> dict:
        return {**asdict(self), "applied": WHERE}

    def describe(self) -> str:
        parts = ([f"Gaussian noise std {self.noise_std:g}"] if self.noise_std > 0 else []) + (
            [f"dropout rate {self.drop_rate:g}"] if self.drop_rate > 0 else [])
        return " + ".join(parts) or "none"


def from_manifest(manifest: dict) -> Perturbation | None:
    """The bundle's perturbation, or None when it sends z as the artifact computes it."""
    entry = (manifest.get("features") or {}).get("perturbation")
    if not entry:
        return None
    found = Perturbation(float(entry["noise_std"]), float(entry["drop_rate"]))
    return found if found.active else None


def perturb(z: np.ndarray, perturbation: Perturbation | None, rng: np.random.Generator) -> np.ndarray:
    if perturbation is None or not perturbation.active:
        return z
    out = np.asarray(z, np.float32)
    if perturbation.noise_std > 0:
        out = out + rng.standard_normal(out.shape, dtype=np.float32) * np.float32(perturbation.noise_std)
    if perturbation.drop_rate > 0:
        out = out * (rng.random(out.shape, dtype=np.float32) >= perturbation.drop_rate)
    return out.astype(np.float32, copy=False)
