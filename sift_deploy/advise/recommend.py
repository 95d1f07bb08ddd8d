"""The Pareto front of leakage against end-to-end latency, and the recommended cut."""

from __future__ import annotations

from typing import Sequence


def end_to_end_ms(edge_ms: float, cloud_ms: float, wire_bytes: float, bandwidth_mbps: float) -> tuple[float, float]:
    """(transfer ms, edge + transfer + cloud ms) for one image at `bandwidth_mbps` (megabits per second)."""
    transfer = wire_bytes * 8 / (bandwidth_mbps * 1e6) * 1e3
    return transfer, edge_ms + transfer + cloud_ms


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (latency, leakage) points, both to be minimised: True where no other point is at least as
    good in both and strictly better in one."""
    def dominated(i: int) -> bool:
        a = points[i]
        return any(b[0] <= a[0] and b[1] <= a[1] and b != a for j, b in enumerate(points) if j != i)

    return [not dominated(i) for i in range(len(points))]


def within_bound(ssim_high: float, max_leakage: float | None) -> bool | None:
    """A cut is within the bound when its SSIM interval's upper end is: the bound holds with the
    interval's confidence, not only on average."""
    return None if max_leakage is None else ssim_high <= max_leakage


def recommend(cuts: Sequence[dict], max_leakage: float | None) -> dict:
    """The cut with the lowest end-to-end latency among those within the bound (all, without one)."""
    allowed = [c for c in cuts if c["within_bound"] is not False]
    if not allowed:
        best = min(cuts, key=lambda c: c["leakage"]["decoder"]["ssim"]["high"])
        return {"cut": None, "reason": f"no cut keeps the decoder SSIM's upper bound at or below {max_leakage:g}; "
                                       f"the least leaky is {best['name']} "
                                       f"(SSIM {best['leakage']['decoder']['ssim']['high']:.3f} upper)"}
    chosen = min(allowed, key=lambda c: c["end_to_end_ms"])
    ssim = chosen["leakage"]["decoder"]["ssim"]
    scope = (f"within SSIM <= {max_leakage:g} (upper end of the interval)" if max_leakage is not None
             else "no leakage bound given (--max-leakage)")
    return {"cut": chosen["name"], "reason": f"lowest end-to-end latency ({chosen['end_to_end_ms']:.3f} ms) {scope}; "
                                             f"decoder SSIM {ssim['mean']:.3f} [{ssim['low']:.3f}, {ssim['high']:.3f}]"}
