"""`sift-deploy bench` reports the bundle's compute floor on this machine: edge MACs x batch / the peak
MAC rate this runtime reaches at the bundle's precision on the probe conv the bundle carries."""

from __future__ import annotations

import json

import pytest

from sift_deploy.bundle import read_manifest
from sift_deploy.documents import parse_document
from sift_deploy.documents.bench_report import BenchReport

from .conftest import FEW, invoke, needs_litert


def _floor(bundle, tmp_path, *extra) -> dict:
    out = tmp_path / "bench.json"
    result = invoke("bench", bundle, *FEW, *extra, "--json-file", out)
    assert result.exit_code == 0, result.output
    assert "compute floor" in result.output
    doc = json.loads(out.read_text())
    parse_document(BenchReport, doc, "the report")
    return doc


def test_export_records_edge_macs_and_a_probe(x86_bundle):
    manifest = read_manifest(x86_bundle)
    assert manifest["model"]["edge_macs"] == 1_502_248  # the reference CNN edge at 32x32
    probe = manifest["floor_probe"]
    assert (x86_bundle / probe["folder"] / probe["file"]).is_file() and probe["macs"] > 0
    assert f"{probe['folder']}/{probe['file']}" in manifest["files"]  # hashed like every other file


def test_bench_reports_the_floor_x86(x86_bundle, tmp_path):
    doc = _floor(x86_bundle, tmp_path, "--batch", "2")
    floor = doc["floor"]
    assert floor["edge_macs"] == 1_502_248 and floor["batch"] == 2
    assert floor["peak_gmacs_per_s"] > 0 and floor["floor_ms"] > 0
    assert floor["floor_ms"] == pytest.approx(2 * 1_502_248 / (floor["peak_gmacs_per_s"] * 1e9) * 1e3, rel=0.01)
    assert floor["p50_over_floor"] == pytest.approx(doc["latency"]["p50_ms"] / floor["floor_ms"], rel=0.05)


@needs_litert
def test_bench_reports_the_floor_rpi(rpi_bundle, tmp_path):
    floor = _floor(rpi_bundle, tmp_path)["floor"]
    assert floor["peak_gmacs_per_s"] > 0 and floor["p50_over_floor"] > 0


def test_a_bundle_without_a_probe_says_so(x86_bundle, tmp_path):

    from sift_deploy.bench.run import compute_floor

    manifest = read_manifest(x86_bundle)
    manifest.pop("floor_probe")
    assert "re-export" in compute_floor(x86_bundle, manifest, None, 1, 1, 1.0)["skipped"]
