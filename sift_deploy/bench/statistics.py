"""Latency statistics in the trtexec / benchmark_model vocabulary, and the cores this process may use."""

from __future__ import annotations

import os

import numpy as np


def latency_stats(times_ns: np.ndarray) -> dict:
    """p50/p90/p99 (linear interpolation), mean, std (ddof 1), min, max of per-call times, in ms."""
    ms = np.asarray(times_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99),
        "mean_ms": float(ms.mean()), "std_ms": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0,
        "min_ms": float(ms.min()), "max_ms": float(ms.max()),
    }


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), which a container or taskset may limit."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
