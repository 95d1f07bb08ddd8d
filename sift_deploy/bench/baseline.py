"""A baseline: the `--json` report of an earlier run of the same configuration. Loading checks it
against the BenchReport document, the identity check refuses a different configuration, and the
comparison puts this run's figures next to the baseline's."""

from __future__ import annotations

import json
from pathlib import Path

from ..documents import DocumentError, parse_document
from ..documents.bench_report import SCHEMA_VERSION, BenchReport
from ..errors import SiftError

# what must be equal for two runs to be comparable: (name in the message, where in the report)
IDENTITY = (("target", ("bundle", "target")), ("backend", ("bundle", "backend")),
            ("precision", ("bundle", "precision")), ("runtime", ("runtime", "kind")),
            ("batch", ("settings", "batch")), ("threads", ("settings", "threads")))
COMPARED = (("latency p50", ("latency", "p50_ms"), "ms"), ("peak memory", ("memory", "peak_rss_mb"), "MB"))


def lookup(doc: dict, path: tuple[str, ...]):
    """The value at `path` in a report, or None where any part of it is missing (a skipped probe)."""
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def load_baseline(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SiftError(f"baseline {path} does not exist; write one with `sift-deploy bench BUNDLE --json {path}`")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SiftError(f"baseline {path} is not JSON ({exc}); pass a report written by `sift-deploy bench --json`") from exc
    found = doc.get("schema_version") if isinstance(doc, dict) else None
    if found != SCHEMA_VERSION:
        raise SiftError(f"baseline {path} has schema_version {found}; this sift-deploy compares bench reports of "
                        f"schema_version {SCHEMA_VERSION}, so re-run the baseline with this version")
    try:
        parse_document(BenchReport, doc, f"baseline {path}")
    except DocumentError as exc:
        raise DocumentError(f"{exc} (not a valid bench report; pass one written by `sift-deploy bench --json`)") from None
    return doc


def check_baseline_identity(baseline: dict, report: dict, path: Path) -> None:
    """A baseline must describe the same configuration, else comparing figures means nothing."""
    for name, key in IDENTITY:
        theirs, ours = lookup(baseline, key), lookup(report, key)
        if theirs != ours:
            raise SiftError(f"baseline {path} was measured with {name} {theirs!r}, this run with {ours!r}; "
                            f"compare runs of the same target, backend, precision, runtime, batch and threads")


def compare_baseline(baseline: dict, report: dict, tolerance_pct: float, path: Path) -> dict:
    items = []
    for figure, key, unit in COMPARED:
        old, new = lookup(baseline, key), lookup(report, key)
        if old is None or new is None or old <= 0:
            items.append({"figure": figure, "unit": unit, "baseline": old, "measured": new, "change_pct": None,
                          "regressed": False, "note": "not measured in both runs"})
            continue
        change = (new - old) / old * 100.0
        items.append({"figure": figure, "unit": unit, "baseline": old, "measured": new, "change_pct": round(change, 2),
                      "regressed": change > tolerance_pct})
    return {"path": str(path), "created": baseline.get("created"), "tolerance_pct": tolerance_pct, "items": items}
