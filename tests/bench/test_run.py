"""`sift-deploy bench` end to end: the torch-free path on the device, the labelled Jetson stand-in,
and one-line errors (exit 2) for bad input."""

from __future__ import annotations

import json
import shutil

import pytest

from sift_deploy import bench
from sift_deploy.backends import get_backend
from sift_deploy.bundle import read_manifest
from sift_deploy.documents import parse_document
from sift_deploy.documents.bench_report import BenchReport

from .conftest import FEW, assert_one_line_error, invoke, needs_litert, run_blocked


# ------------------------------------------------------------------ no torch on the bench path


def _no_torch_bench(bundle, tmp_path) -> dict:
    out = tmp_path / "bench.json"
    proc = run_blocked(["bench", bundle, *FEW, "--json-file", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TORCH_MODULES=[]" in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["torch_imported"] is False and doc["memory"]["torch_imported"] is False
    parse_document(BenchReport, doc, f"the report of {bundle.name}")
    return doc


def test_bench_runs_without_torch_x86(x86_bundle, tmp_path):
    doc = _no_torch_bench(x86_bundle, tmp_path)
    assert doc["bundle"]["backend"] == "onnxruntime" and "skipped" not in doc["features"]["wire_accuracy"]


@needs_litert
def test_bench_runs_without_torch_rpi(rpi_bundle, tmp_path):
    doc = _no_torch_bench(rpi_bundle, tmp_path)
    assert doc["bundle"]["backend"] == "litert" and doc["runtime"]["name"] == "litert"
    assert doc["settings"]["threads"] <= bench.usable_cores()  # the profile's 4 threads, capped at this machine's cores
    assert doc["features"]["bytes_per_image"] == {"fp32": 3072, "fp16": 1536, "int8": 768}


@needs_litert
def test_wire_accuracy_is_skipped_with_a_reason_without_onnxruntime(rpi_bundle, tmp_path):
    """A Pi with only ai-edge-litert: bench runs, and the int8-on-the-wire accuracy says why it is absent."""
    out = tmp_path / "bench.json"
    proc = run_blocked(["bench", rpi_bundle, *FEW, "--json-file", out], blocked=["onnxruntime"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    acc = json.loads(out.read_text())["features"]["wire_accuracy"]
    assert set(acc) == {"skipped"} and "onnxruntime is not installed" in acc["skipped"]
    assert "sift-deploy[x86]" in acc["skipped"]


# ------------------------------------------------------------------ jetson: TensorRT or a labelled stand-in


def test_jetson_without_tensorrt_points_at_the_stand_in(jetson_bundle):
    from sift_deploy.backends.tensorrt.runner import tensorrt_available

    if tensorrt_available()[0]:
        pytest.skip("TensorRT and a GPU are present: the native path runs here")
    result = invoke("bench", jetson_bundle, *FEW)
    assert_one_line_error(result, "TensorRT is not available here", "--runtime onnxruntime")


def test_jetson_stand_in_is_labelled_everywhere(jetson_bundle, tmp_path):
    result = invoke("bench", jetson_bundle, *FEW, "--runtime", "onnxruntime", "--json-file", tmp_path / "b.json",
                    "--markdown", tmp_path / "b.md")
    assert result.exit_code == 0, result.output  # budgets are not checked for a stand-in
    doc = json.loads((tmp_path / "b.json").read_text())
    parse_document(BenchReport, doc, "the stand-in report")
    assert doc["runtime"]["kind"] == "stand-in" and doc["runtime"]["label"] == get_backend("tensorrt").stand_ins["onnxruntime"]
    assert doc["budgets"]["checked"] is False and "stand-in" in doc["budgets"]["reason"]
    assert any(n.startswith("STAND-IN") for n in doc["notes"])
    assert "STAND-IN" in result.stdout
    assert "Stand-in" in (tmp_path / "b.md").read_text() and "[STAND-IN]" in (tmp_path / "b.md").read_text()


# ------------------------------------------------------------------ bad input: one line, exit 2


def test_tampered_bundle_is_refused(x86_bundle, tmp_path):
    copy_dir = tmp_path / "tampered"
    shutil.copytree(x86_bundle, copy_dir)
    edge = copy_dir / read_manifest(copy_dir)["edge_file"]
    data = bytearray(edge.read_bytes())
    data[-1] ^= 0xFF
    edge.write_bytes(bytes(data))
    assert_one_line_error(invoke("bench", copy_dir, *FEW), "failed verification", "was modified")


def test_not_a_bundle(tmp_path):
    assert_one_line_error(invoke("bench", tmp_path / "nowhere"), "does not exist")
    assert_one_line_error(invoke("bench", tmp_path), "has no manifest.json")


@pytest.mark.parametrize("option, value, fragment", [
    ("--iterations", "0", "--iterations must be at least 1"),
    ("--warmup", "-1", "--warmup must be 0 or more"),
    ("--batch", "0", "--batch must be at least 1"),
    ("--threads", "0", "--threads must be at least 1"),
    ("--tolerance", "-5", "--tolerance"),
])
def test_bad_options(x86_bundle, option, value, fragment):
    assert_one_line_error(invoke("bench", x86_bundle, option, value), fragment)


def test_runtime_that_cannot_serve_the_bundle(x86_bundle):
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--runtime", "tensorrt"), "cannot run under tensorrt")


def test_missing_onnxruntime_names_the_extra(x86_bundle):
    proc = run_blocked(["bench", x86_bundle, *FEW], blocked=["onnxruntime"])
    assert proc.returncode == 2, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "onnxruntime is not installed" in error[0] and "sift-deploy[x86]" in error[0]


@needs_litert
def test_missing_litert_names_the_extra(rpi_bundle):
    proc = run_blocked(["bench", rpi_bundle, *FEW],
                       blocked=["ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime"])
    assert proc.returncode == 2, proc.stderr
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "no TFLite runtime is installed" in error[0] and "sift-deploy[rpi]" in error[0]


def test_batch_larger_than_the_reference_set(x86_bundle, tmp_path):
    """Batches cycle through the 256 real images (tiled past 256); per-image figures follow the batch."""
    result = invoke("bench", x86_bundle, "--iterations", "3", "--warmup", "1", "--batch", "300",
                    "--json-file", tmp_path / "b.json")
    assert result.exit_code == 0, result.output  # budgets do not apply beyond batch 1
    doc = json.loads((tmp_path / "b.json").read_text())
    parse_document(BenchReport, doc, "the batch-300 report")
    assert doc["settings"]["batch"] == 300 and doc["budgets"]["checked"] is False
    assert doc["latency"]["per_image_p50_ms"] == pytest.approx(doc["latency"]["p50_ms"] / 300, rel=1e-3)
