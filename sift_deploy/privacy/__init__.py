"""Privacy tools on transmitted features, independent of the runtime that produced them.

- `decoder`: the black-box inverse-network attack (train on aux pairs, reconstruct test images);
- `whitebox`: the optimisation attack through a torch edge module;
- `metrics`: per-image MSE / PSNR / SSIM, bootstrap intervals, the gate's seed-and-image paired
  difference, and the no-information and label-only baselines;
- `mine`: MINE lower bound on I(x; z) in nats (unbounded critic);
- `dependence`: distance correlation dCor^2(x, z) and the non-zero count of z;
- `budget`: the `fast` / `full` presets (`AttackBudget`).

Only `budget` is imported here; the others pull in torch / scikit-image when imported.
"""

from .budget import PRESETS, AttackBudget

__all__ = ["AttackBudget", "PRESETS"]
