"""The profile's budgets: checked for the bundle's own runtime at batch 1 only; an exceeded one exits 1."""

from __future__ import annotations

import copy

from sift_deploy import bench
from sift_deploy.profiles import TARGETS_DIR

from .conftest import FEW, export, invoke


def test_budgets_fail_only_where_they_apply(x86_run):
    report = copy.deepcopy(x86_run[1])
    profile = {"name": "tiny", "budgets": {"latency_p50_ms": 1e-6, "peak_memory_mb": 1e6}}
    budgets = bench.check_budgets(profile, report)
    assert budgets["checked"] and [i["passed"] for i in budgets["items"]] == [False, True]
    failures = bench.failures_of({**report, "budgets": budgets, "baseline": None})
    assert len(failures) == 1 and failures[0].startswith("latency p50") and "latency_p50_ms" in failures[0]
    report["runtime"]["kind"] = "stand-in"
    budgets = bench.check_budgets(profile, report)
    assert not budgets["checked"] and "stand-in" in budgets["reason"]
    assert bench.failures_of({**report, "budgets": budgets, "baseline": None}) == []
    report["runtime"]["kind"], report["settings"]["batch"] = "native", 8
    assert "batch 1" in bench.check_budgets(profile, report)["reason"]


def test_exceeded_profile_budget_exits_1(bundles_root, tmp_path):
    profile = (TARGETS_DIR / "x86-64.toml").read_text()
    profile = profile.replace('name = "x86-64"', 'name = "x86-tiny-budget"')
    profile = profile.replace("latency_p50_ms = 1.0", "latency_p50_ms = 0.000001")
    path = tmp_path / "x86-tiny-budget.toml"
    path.write_text(profile)
    bundle = export(bundles_root, str(path), "fp32")
    result = invoke("bench", bundle, *FEW)
    assert result.exit_code == 1, result.output
    assert "latency p50" in result.stderr and "exceeds the profile budget latency_p50_ms" in result.stderr
