"""`--baseline`: the same configuration compared figure by figure; another schema, configuration or
a file that is not a bench report is refused in one line."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sift_deploy import bench
from sift_deploy.documents.bench_report import SCHEMA_VERSION
from sift_deploy.errors import SiftError

from .conftest import FEW, assert_one_line_error, invoke


def test_same_report_as_baseline_is_no_regression(x86_run):
    doc = x86_run[1]
    comparison = bench.compare_baseline(doc, doc, 10.0, Path("same.json"))
    assert [i["change_pct"] for i in comparison["items"]] == [0.0, 0.0]
    assert not any(i["regressed"] for i in comparison["items"])
    assert bench.failures_of({**doc, "baseline": comparison}) == []


def test_slower_than_baseline_fails_and_names_the_figure(x86_run, x86_bundle, tmp_path):
    doc = copy.deepcopy(x86_run[1])
    # Unit level: the baseline p50 halved means this run is 100% slower.
    doc["latency"]["p50_ms"] = x86_run[1]["latency"]["p50_ms"] / 2
    comparison = bench.compare_baseline(doc, x86_run[1], 10.0, Path("b.json"))
    latency = comparison["items"][0]
    assert latency["figure"] == "latency p50" and latency["regressed"] and latency["change_pct"] == pytest.approx(100.0)
    assert not comparison["items"][1]["regressed"]
    # Through the CLI: a baseline far faster than any real run (p50 / 20) exits 1 and names the figure.
    doc["latency"]["p50_ms"] = x86_run[1]["latency"]["p50_ms"] / 20
    path = tmp_path / "fast-baseline.json"
    path.write_text(json.dumps(doc))
    result = invoke("bench", x86_bundle, *FEW, "--baseline", path, "--json-file", tmp_path / "new.json")
    assert result.exit_code == 1, result.output
    assert "latency p50 regressed" in result.stderr and "tolerance 10%" in result.stderr
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["passed"] is False and new["baseline"]["items"][0]["regressed"] is True
    # A generous tolerance accepts the same figures.
    result = invoke("bench", x86_bundle, *FEW, "--baseline", path, "--tolerance", "1e9")
    assert result.exit_code == 0, result.output


def test_baseline_of_another_schema_or_target(x86_run, x86_bundle, tmp_path):
    doc = x86_run[1]
    other_schema = tmp_path / "v99.json"
    other_schema.write_text(json.dumps({**doc, "schema_version": 99}))
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", other_schema), "schema_version 99")
    other_target = tmp_path / "rpi.json"
    other_target.write_text(json.dumps({**doc, "bundle": {**doc["bundle"], "target": "rpi4", "backend": "litert"}}))
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", other_target), "target 'rpi4'")
    other_batch = tmp_path / "b8.json"
    other_batch.write_text(json.dumps({**doc, "settings": {**doc["settings"], "batch": 8}}))
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", other_batch), "batch 8")
    not_json = tmp_path / "x.json"
    not_json.write_text("{")
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", not_json), "is not JSON")
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", tmp_path / "none.json"), "does not exist")
    not_a_report = tmp_path / "partial.json"
    not_a_report.write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", not_a_report), "not a valid bench report")


def test_a_baseline_that_is_not_a_bench_report_names_the_field(x86_run, tmp_path):
    doc = copy.deepcopy(x86_run[1])
    doc["memory"]["peak_rss_mb"] = "46 MB"  # a figure bench would compare: refused before any measurement
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SiftError) as caught:
        bench.load_baseline(path)
    message = str(caught.value)
    assert str(path) in message and "peak_rss_mb" in message and "not a valid bench report" in message
    assert "\n" not in message
