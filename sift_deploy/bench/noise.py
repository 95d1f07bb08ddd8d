"""Was the machine busy while bench timed? The load average around the timed loop and the tail of
the latency distribution say so; a noisy run is reported with a warning (it still passes: its
figures are what this machine gave, but comparing them with a baseline is unwise)."""

from __future__ import annotations

import os

NOISY_P99_OVER_P50 = 10.0  # a few calls waited far longer than the typical one: something else ran


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the OS reports them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def timing_noise(load_before: list[float] | None, load_after: list[float] | None, cores: int, threads: int,
                 p50_ms: float, p99_ms: float) -> dict:
    """Busy: the 1-minute load before timing left fewer free cores than bench's threads.
    Noisy: busy, or p99 / p50 above NOISY_P99_OVER_P50."""
    ratio = round(p99_ms / p50_ms, 2) if p50_ms > 0 else None
    reasons = []
    if load_before is not None and load_before[0] > max(0, cores - threads):
        reasons.append(f"the machine was busy: 1-minute load average {load_before[0]:.2f} before timing, "
                       f"{cores} usable core(s), {threads} thread(s) timed")
    if ratio is not None and ratio > NOISY_P99_OVER_P50:
        reasons.append(f"p99 / p50 = {ratio:.1f} (> {NOISY_P99_OVER_P50:g}): some calls waited for the CPU")
    return {"load_average_before": load_before, "load_average_after": load_after, "cores_usable": cores,
            "p99_over_p50": ratio, "noisy": bool(reasons), "reasons": reasons}
