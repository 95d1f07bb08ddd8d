"""Parity of an exported edge against the float PyTorch edge (numpy only: runs on devices).

Compared on held-out real images: the transmitted tensor z (cosine similarity per image, max-abs
error) and the top-1 agreement of the full pipeline (exported edge -> float cloud) with the float
model. The int8-on-the-wire variant sends the exported z through the bundle's wire quantization.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import wire
from .backends.base import run_in_batches


def cosine_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = (a * b).sum(1) / np.maximum(na * nb, 1e-30)
    return np.where(both_zero, 1.0, cos)


def compare(
    z_ref: np.ndarray,
    z_dep: np.ndarray,
    pred_ref: np.ndarray,
    logits_dep: np.ndarray | None,
    labels: np.ndarray | None,
    thresholds: dict | None,
    logits_wire: np.ndarray | None = None,
) -> dict:
    cos = cosine_per_image(z_ref, z_dep)
    result: dict = {
        "images": int(len(z_ref)),
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "max_abs": float(np.abs(z_ref.astype(np.float64) - z_dep).max()),
        "feature_max": float(np.abs(z_ref).max()),
    }
    result["max_abs_relative"] = result["max_abs"] / max(result["feature_max"], 1e-30)
    if logits_dep is not None:
        pred_dep = logits_dep.argmax(1)
        result["top1_agreement"] = float((pred_dep == pred_ref).mean())
        if labels is not None:
            result["accuracy_float"] = float((pred_ref == labels).mean())
            result["accuracy_deployed"] = float((pred_dep == labels).mean())
    if logits_wire is not None:
        pred_wire = logits_wire.argmax(1)
        result["wire_int8"] = {"top1_agreement": float((pred_wire == pred_ref).mean())}
        if labels is not None:
            result["wire_int8"]["accuracy"] = float((pred_wire == labels).mean())
    failures = []
    if thresholds:
        result["thresholds"] = dict(thresholds)
        if result["cosine_mean"] < thresholds["min_cosine"]:
            failures.append(f"cosine {result['cosine_mean']:.6f} is {thresholds['min_cosine'] - result['cosine_mean']:.2g} "
                            f"below the minimum {thresholds['min_cosine']}")
        if thresholds.get("max_abs") is not None and result["max_abs"] > thresholds["max_abs"]:
            failures.append(f"max-abs error {result['max_abs']:.3g} exceeds {thresholds['max_abs']} by "
                            f"{result['max_abs'] - thresholds['max_abs']:.3g}")
        bound = thresholds.get("max_abs_relative")
        if bound is not None and result["max_abs_relative"] > bound:
            failures.append(f"max-abs error {result['max_abs']:.3g} is {result['max_abs_relative']:.1%} of z's largest "
                            f"magnitude {result['feature_max']:.3g}, above the bound {bound:.1%}")
        if "top1_agreement" in result and result["top1_agreement"] < thresholds["min_top1_agreement"]:
            failures.append(f"top-1 agreement {result['top1_agreement']:.2%} is "
                            f"{(thresholds['min_top1_agreement'] - result['top1_agreement']) * 100:.2f} points below "
                            f"{thresholds['min_top1_agreement']:.2%}")
    result["failures"] = failures
    result["passed"] = not failures
    return result


def wilson_interval(agree: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion agree/n (sensible near 0 and 1, unlike the normal one)."""
    if n <= 0:
        return 0.0, 1.0
    p = agree / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def agreement_interval(parity: dict, sample: dict | None) -> dict:
    """The top-1 agreement's 95 % interval, and whether it is narrower than the bound's margin (a
    sample too small to tell says so in a note, it does not fail the export)."""
    out: dict = {}
    if "top1_agreement" not in parity:
        return out
    n = int(parity["images"])
    lo, hi = wilson_interval(round(parity["top1_agreement"] * n), n)
    out["top1_agreement_interval"] = [round(lo, 6), round(hi, 6)]
    bound = (parity.get("thresholds") or {}).get("min_top1_agreement")
    if bound is not None:
        margin = parity["top1_agreement"] - bound
        half = (hi - lo) / 2
        out["top1_agreement_margin"] = round(margin, 6)
        out["interval_narrower_than_margin"] = bool(half < abs(margin))
        if not out["interval_narrower_than_margin"] and sample and sample.get("images", n) < sample.get("of", n):
            out["note"] = (f"the 95 % interval [{lo:.4f}, {hi:.4f}] of the agreement on {n} sampled images straddles "
                           f"the bound {bound}; run the export with --parity-images all to decide on the full split")
    return out


def deployed_parity(runner, cloud, inputs: np.ndarray, z_ref: np.ndarray, pred_ref: np.ndarray,
                    labels: np.ndarray | None, thresholds: dict | None, wire_params: dict | None,
                    batch: int = 256, on_batch: Callable[[int, int], None] | None = None) -> dict:
    """Run the exported edge and the float cloud (active runners; `cloud` may be None) and compare.
    `on_batch(done, total)` hears of every batch of images the edge has run."""
    def edge(x: np.ndarray) -> np.ndarray:
        z = runner.infer(x)
        if on_batch is not None:
            edge.done += len(x)
            on_batch(edge.done, len(inputs))
        return z

    edge.done = 0
    z_dep = run_in_batches(edge, inputs, batch)
    logits_dep = run_in_batches(cloud.infer, z_dep, batch) if cloud is not None else None
    logits_wire = None
    if cloud is not None and wire_params is not None:
        logits_wire = run_in_batches(cloud.infer, wire.roundtrip(z_dep, wire_params), batch)
    return compare(z_ref, z_dep, pred_ref, logits_dep, labels, thresholds, logits_wire)
