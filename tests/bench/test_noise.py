"""bench.noise: a busy machine or a long latency tail marks a run noisy, with the reason."""

from __future__ import annotations

from sift_deploy.bench.noise import NOISY_P99_OVER_P50, load_average, timing_noise


def test_a_quiet_run():
    noise = timing_noise([0.2, 0.3, 0.3], [0.9, 0.4, 0.3], cores=4, threads=1, p50_ms=1.0, p99_ms=1.5)
    assert noise["noisy"] is False and noise["reasons"] == [] and noise["p99_over_p50"] == 1.5


def test_a_long_tail_is_noisy():
    noise = timing_noise(None, None, cores=4, threads=1, p50_ms=0.3, p99_ms=0.3 * (NOISY_P99_OVER_P50 + 1))
    assert noise["noisy"] is True and len(noise["reasons"]) == 1 and "p99 / p50 = 11.0" in noise["reasons"][0]


def test_a_busy_machine_is_noisy():
    noise = timing_noise([2.5, 2.0, 1.0], [2.6, 2.0, 1.0], cores=2, threads=1, p50_ms=1.0, p99_ms=1.2)
    assert noise["noisy"] is True and "busy" in noise["reasons"][0] and "2.50" in noise["reasons"][0]
    assert noise["load_average_before"] == [2.5, 2.0, 1.0]


def test_load_average_is_three_numbers_here():
    load = load_average()
    assert load is not None and len(load) == 3 and all(v >= 0 for v in load)
