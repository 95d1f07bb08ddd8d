"""Latency statistics in ms from per-call ns."""

from __future__ import annotations

import numpy as np
import pytest

from sift_deploy.bench.statistics import latency_stats, usable_cores


def test_latency_stats_of_known_times():
    stats = latency_stats(np.array([1_000_000, 2_000_000, 3_000_000, 4_000_000], np.int64))
    assert stats["p50_ms"] == pytest.approx(2.5) and stats["p90_ms"] == pytest.approx(3.7)
    assert stats["p99_ms"] == pytest.approx(3.97) and stats["mean_ms"] == pytest.approx(2.5)
    assert stats["std_ms"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert (stats["min_ms"], stats["max_ms"]) == (1.0, 4.0)


def test_one_call_has_no_spread():
    assert latency_stats(np.array([5_000_000]))["std_ms"] == 0.0


def test_usable_cores_is_at_least_one():
    assert usable_cores() >= 1
