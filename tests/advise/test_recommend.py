"""sift_deploy/advise/recommend.py: end-to-end latency, the Pareto front and the choice."""

from __future__ import annotations

import pytest

from sift_deploy.advise.recommend import end_to_end_ms, pareto_front, recommend, within_bound


def _cut(name: str, e2e: float, ssim: float, half_width: float = 0.01, bound: float | None = None) -> dict:
    return {"name": name, "end_to_end_ms": e2e, "within_bound": within_bound(ssim + half_width, bound),
            "leakage": {"decoder": {"ssim": {"mean": ssim, "low": ssim - half_width, "high": ssim + half_width}}}}


def test_transfer_time_is_bytes_over_bandwidth():
    transfer, total = end_to_end_ms(1.0, 2.0, wire_bytes=1250, bandwidth_mbps=10)
    assert transfer == pytest.approx(1.0) and total == pytest.approx(4.0)  # 10,000 bits at 10 Mbit/s


def test_the_front_keeps_only_undominated_points():
    points = [(1.0, 0.5), (2.0, 0.2), (3.0, 0.3), (0.5, 0.9), (2.0, 0.2)]
    assert pareto_front(points) == [True, True, False, True, True]  # (3, 0.3) is beaten by (2, 0.2); ties stay


def test_the_fastest_cut_within_the_bound_is_chosen_judged_by_the_interval_s_upper_end():
    cuts = [_cut("fast", 1.0, 0.45, bound=0.45), _cut("mid", 2.0, 0.30, bound=0.45), _cut("slow", 5.0, 0.10, bound=0.45)]
    choice = recommend(cuts, 0.45)
    assert choice["cut"] == "mid" and "within SSIM <= 0.45" in choice["reason"]  # "fast" is within only on average


def test_without_a_bound_the_fastest_cut_is_chosen_and_the_reason_says_so():
    cuts = [_cut("a", 3.0, 0.1), _cut("b", 1.0, 0.8)]
    choice = recommend(cuts, None)
    assert choice["cut"] == "b" and "no leakage bound" in choice["reason"]


def test_no_cut_within_the_bound_names_the_least_leaky():
    cuts = [_cut("a", 3.0, 0.4, bound=0.1), _cut("b", 1.0, 0.8, bound=0.1)]
    choice = recommend(cuts, 0.1)
    assert choice["cut"] is None and "least leaky is a" in choice["reason"]
