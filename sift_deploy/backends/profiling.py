"""Per-op profiles of an artifact, in one shape for every runtime (`Runner.profile`).

A backend measures the time of each node of its graph its own way (ONNX Runtime: its profiler's
`_kernel_time` events; LiteRT: per-node timing of prefix graphs, see litert/runner.py) and hands
the rows to `op_profile`, which sorts them, gives each its share of the measured op time, and
sums the shares of the two kinds of work that are pure overhead of a deployment choice:

- quantize / dequantize: converting between float and int8 (Q/DQ nodes, LiteRT QUANTIZE /
  DEQUANTIZE, and the runner's own numpy conversion of int8 I/O);
- layout: moving data without computing (transposes, reshapes, ORT's NCHWc reorders).

Everything else is compute. Shares are of the sum of the op times (they add up to 1).
"""

from __future__ import annotations

from collections import defaultdict

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QUANTIZE", "DEQUANTIZE",
                     "runner: quantize input", "runner: dequantize output"})
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "ReorderInput", "ReorderOutput", "Flatten", "Squeeze", "Unsqueeze",
                        "Identity", "TRANSPOSE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "runner: layout (NHWC)"})
CATEGORIES = ("quantize_dequantize", "layout", "compute")


def category(op_type: str) -> str:
    if op_type in QDQ_OPS:
        return "quantize_dequantize"
    if op_type in LAYOUT_OPS:
        return "layout"
    return "compute"


def op_profile(rows: list[dict], *, method: str, runs: int, batch: int, run_us: float | None = None,
               notes: list[str] | None = None) -> dict:
    """rows: {"node", "op_type", "us"} (mean time of the node per run). The profile dict that
    `sift-deploy bench --profile` prints and writes (documents.bench_report.OpProfile)."""
    total = sum(max(0.0, float(r["us"])) for r in rows)
    ops = []
    for r in sorted(rows, key=lambda r: -float(r["us"])):
        us = max(0.0, float(r["us"]))
        ops.append({"node": str(r["node"]), "op_type": str(r["op_type"]), "category": category(str(r["op_type"])),
                    "us": round(us, 3), "share": round(us / total, 6) if total > 0 else 0.0})
    by_type: dict[str, float] = defaultdict(float)
    by_category: dict[str, float] = {c: 0.0 for c in CATEGORIES}
    for op in ops:
        by_type[op["op_type"]] += op["us"]
        by_category[op["category"]] += op["us"]
    share = (lambda v: round(v / total, 6) if total > 0 else 0.0)
    return {
        "method": method,
        "runs": int(runs),
        "batch": int(batch),
        "op_us_total": round(total, 3),
        "run_us": None if run_us is None else round(float(run_us), 3),
        "shares": {c: share(v) for c, v in by_category.items()},
        "op_types": [{"op_type": t, "us": round(v, 3), "share": share(v)}
                     for t, v in sorted(by_type.items(), key=lambda kv: -kv[1])],
        "ops": ops,
        "notes": list(notes or []),
    }
