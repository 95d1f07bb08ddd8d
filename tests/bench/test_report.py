"""The report `sift-deploy bench --json` writes: it is a BenchReport (the typed document whose JSON
Schema is committed), and what a person reads (terminal table, Markdown) shows its figures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sift_deploy import bench
from sift_deploy.documents import DocumentError, parse_document
from sift_deploy.documents.bench_report import SCHEMA_VERSION, BenchReport

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "bench-report.schema.json"


def test_report_is_a_bench_report_document(x86_run):
    result, doc, markdown, _ = x86_run
    parse_document(BenchReport, doc, "the x86 report")
    assert doc["schema_version"] == SCHEMA_VERSION == bench.SCHEMA_VERSION
    lat = doc["latency"]
    assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert lat["load_ms"] > 0 and lat["first_inference_ms"] > 0 and lat["throughput_images_per_s"] > 0
    assert doc["settings"]["iterations"] == 20 and doc["settings"]["batch"] == 1 and doc["settings"]["threads"] == 1
    assert "reference.npz" in doc["settings"]["inputs"]
    assert doc["runtime"]["kind"] == "native" and doc["runtime"]["versions"]["onnxruntime"]
    assert doc["runtime"]["label"] == "ONNX Runtime CPU"  # from the backend's runner, not from bench
    mem = doc["memory"]
    assert mem["peak_rss_mb"] >= mem["after_load_rss_mb"] > 0 and mem["baseline_rss_mb"] > 0
    assert mem["torch_imported"] is False
    assert doc["bundle"]["artifact_bytes"] == (Path(doc["bundle"]["path"]) / doc["bundle"]["artifact"]).stat().st_size
    prov = doc["provenance"]
    assert prov["cores_online"] >= 1 and prov["python"] and prov["device_model"] != "unknown"
    assert doc["budgets"]["checked"] is True and {i["budget"] for i in doc["budgets"]["items"]} == {
        "latency_p50_ms", "peak_memory_mb"}
    assert doc["baseline"] is None and doc["passed"] is (doc["failures"] == [])
    # what a person reads: the table on the terminal and the Markdown job summary
    for text in (result.stdout, markdown):
        assert "p50" in text and "peak RSS" in text and "768" in text and "x86-64" in text
    assert markdown.startswith("### sift-deploy bench: ") and "| latency |" in markdown and "<details>" in markdown


def test_the_optional_parts_of_a_report_validate(x86_run):
    doc = copy.deepcopy(x86_run[1])
    doc["memory"] = {"skipped": "memory probe turned off"}
    doc["budgets"]["reason"] = "not checked: the profile's budgets are for batch 1"
    doc["baseline"] = bench.compare_baseline(x86_run[1], doc, 10.0, Path("b.json"))  # memory skipped: a note
    assert doc["baseline"]["items"][1]["note"] == "not measured in both runs"
    accuracy = doc["features"]["wire_accuracy"]
    doc["features"]["wire_accuracy"] = {k: v for k, v in accuracy.items() if not k.startswith("accuracy")}  # no labels
    parse_document(BenchReport, doc, "a report with its optional parts")
    doc["features"]["wire_accuracy"] = {"skipped": "onnxruntime is not installed"}
    parse_document(BenchReport, doc, "a report without wire accuracy")


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d["latency"].pop("p50_ms"), ("latency", "p50_ms")),
    (lambda d: d["settings"].update(iterations=0), ("settings", "iterations")),
    (lambda d: d["runtime"].update(kind="emulated"), ("runtime", "kind", "emulated")),
    (lambda d: d["features"].update(numel="768"), ("features", "numel")),  # strict: a string is not a count
    (lambda d: d["bundle"].update(precision="int4"), ("bundle", "precision")),
    (lambda d: d["memory"].update(peak_rss_mb="46"), ("memory", "peak_rss_mb")),
    (lambda d: d["budgets"]["items"][0].update(passed="yes"), ("budgets", "passed")),
    (lambda d: d.update(surprise=1), ("surprise",)),
])
def test_a_report_that_does_not_match_names_the_field(x86_run, change, fragments):
    doc = copy.deepcopy(x86_run[1])
    change(doc)
    with pytest.raises(DocumentError) as caught:
        parse_document(BenchReport, doc, "report r.json")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("report r.json")
    for fragment in fragments:
        assert fragment in message, message


def test_committed_schema_is_the_models():
    expected = json.dumps(BenchReport.model_json_schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA_FILE.read_text() == expected, f"{SCHEMA_FILE} is stale; regenerate it from BenchReport"
    schema = json.loads(SCHEMA_FILE.read_text())
    assert schema["additionalProperties"] is False and "schema_version" in schema["required"]
    assert "enum" not in schema["$defs"]["BundleFacts"]["properties"]["backend"]  # backends are not listed here
