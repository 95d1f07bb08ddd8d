"""Rich tables of a manifest's `precision_search` (export, verify and inspect print them)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table


def search_table(record: dict) -> Group:
    bounds = record["bounds"]
    verdict = "met" if record["met"] else "NOT met: " + "; ".join(record["unmet"])
    int8 = [name for name, p in record["layers"].items() if p == "int8"]
    layers = Table(title=f"auto precision ({record['runtime']}): {len(int8)} of {len(record['layers'])} layers int8, "
                         f"bounds {verdict}", title_justify="left")
    layers.add_column("layer")
    layers.add_column("precision")
    layers.add_column("sensitivity", justify="right")
    for name, precision in record["layers"].items():
        sensitivity = record["sensitivities"].get(name)
        layers.add_row(name, precision, "" if sensitivity is None else f"{sensitivity:.3f}")
    candidates = Table(title=f"{len(record['candidates'])} candidates measured in {record['seconds']:.0f} s "
                             f"(bounds: drop <= {bounds['max_acc_drop_points']:g} pt, leak <= "
                             f"{bounds['max_leak_increase_ssim']:g} SSIM; * Pareto set, > accepted)", title_justify="left")
    for column in ("#", "step", "int8", "drop (pt)", "leak (SSIM)", "dCor", "latency (us)", "bytes", "bounds"):
        candidates.add_column(column, justify="left" if column == "step" else "right")
    for c in record["candidates"]:
        mark = ("*" if c["pareto"] else " ") + (">" if c["accepted"] else " ")
        candidates.add_row(f"{mark}{c['index']}", c["step"], str(c["int8_count"]), f"{c['accuracy_drop_points']:.2f}",
                           f"{c['leakage_increase_ssim']:+.4f}", f"{c['probe'].get('dcor', float('nan')):.3f}",
                           "" if c["latency_us"] is None else f"{c['latency_us']:.0f}",
                           "" if c["bytes"] is None else str(c["bytes"]), "hold" if c["meets_bounds"] else "broken")
    return Group(layers, candidates)
