"""The profile's budgets (promises to the device owner, checked only when bench measured what they
speak about: the bundle's own runtime at batch 1), and the failures that make bench exit 1."""

from __future__ import annotations

from ..backends.base import NATIVE
from .baseline import lookup


def check_budgets(profile: dict, report: dict) -> dict:
    budgets = (profile or {}).get("budgets", {}) or {}
    wanted = (("latency p50", "latency_p50_ms", ("latency", "p50_ms"), "ms"),
              ("peak memory", "peak_memory_mb", ("memory", "peak_rss_mb"), "MB"))
    reason = None
    if report["runtime"]["kind"] != NATIVE:
        reason = ("not checked: a stand-in runtime does not measure the device the budgets are for")
    elif report["settings"]["batch"] != 1:
        reason = "not checked: the profile's budgets are for batch 1"
    items = []
    for figure, name, key, unit in wanted:
        if name not in budgets:
            continue
        measured = lookup(report, key)
        passed = None if reason is not None or measured is None else bool(measured <= budgets[name])
        items.append({"figure": figure, "budget": name, "limit": float(budgets[name]), "measured": measured,
                      "unit": unit, "passed": passed})
    out = {"checked": reason is None, "profile": (profile or {}).get("name"), "items": items}
    if reason is not None:
        out["reason"] = reason
    return out


def failures_of(report: dict) -> list[str]:
    failures = []
    for item in report["budgets"]["items"]:
        if item["passed"] is False:
            over = (item["measured"] - item["limit"]) / item["limit"] * 100
            failures.append(f"{item['figure']} {item['measured']:.3f} {item['unit']} exceeds the profile budget "
                            f"{item['budget']} = {item['limit']:g} {item['unit']} by {over:.0f}%")
    if report["baseline"]:
        tol = report["baseline"]["tolerance_pct"]
        for item in report["baseline"]["items"]:
            if item["regressed"]:
                failures.append(f"{item['figure']} regressed: {item['measured']:.3f} {item['unit']} vs baseline "
                                f"{item['baseline']:.3f} {item['unit']} (+{item['change_pct']:.1f}%, tolerance {tol:g}%)")
    return failures
