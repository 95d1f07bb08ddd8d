"""`sift-deploy bench`: the report's schema, budgets and baselines, the memory probe, feature bytes,
the torch-free path, and one-line errors for bad input.

Bundles are exported once per module from the shipped reference checkpoint (parity on the committed
hold-out images, so no dataset is read). No test asserts a wall time: timings here are noisy.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sift_deploy import bench, wire
from sift_deploy.backends import get_backend, open_runner
from sift_deploy.bundle import read_manifest
from sift_deploy.cli import app
from sift_deploy.data.preprocess import model_input
from sift_deploy.export import export_bundle
from sift_deploy.profiles import TARGETS_DIR

runner = CliRunner()
FEW = ("--iterations", "20", "--warmup", "2")
LITERT_MISSING = "ai-edge-litert / litert-torch are not installed (pip install 'sift-deploy[rpi,rpi-export]')"
HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None and importlib.util.find_spec("litert_torch") is not None
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason=LITERT_MISSING)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _export(root: Path, target: str, precision: str | None = None) -> Path:
    out = root / f"{Path(target).stem}-{precision or 'default'}"
    export_bundle(None, target, precision, output=out, parity_on_test_split=False)
    return out


@pytest.fixture(scope="module")
def bundles_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench-bundles")


@pytest.fixture(scope="module")
def x86_bundle(bundles_root) -> Path:
    return _export(bundles_root, "x86")  # the profile's default precision: int8 (ORT Q/DQ)


@pytest.fixture(scope="module")
def rpi_bundle(bundles_root) -> Path:
    if not HAS_LITERT:
        pytest.skip(LITERT_MISSING)
    return _export(bundles_root, "rpi", "fp32")  # fp32 converts in seconds; int8 takes ~1 min


@pytest.fixture(scope="module")
def jetson_bundle(bundles_root) -> Path:
    return _export(bundles_root, "jetson")  # int8 Q/DQ ONNX (+ build_engine.sh); no engine without TensorRT


@pytest.fixture(scope="module")
def x86_run(x86_bundle, tmp_path_factory):
    """One bench run of the x86 bundle: (CliRunner result, JSON report, Markdown text, JSON path)."""
    out = tmp_path_factory.mktemp("x86-run")
    result = invoke("bench", x86_bundle, *FEW, "--json", out / "bench.json", "--markdown", out / "bench.md")
    assert result.exit_code == 0, result.output
    return result, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text(), out / "bench.json"


# ------------------------------------------------------------------ the report


def test_report_validates_against_the_schema(x86_run):
    result, doc, markdown, _ = x86_run
    assert bench.schema_errors(doc, bench.REPORT_SCHEMA) == []
    assert doc["schema_version"] == bench.SCHEMA_VERSION
    lat = doc["latency"]
    assert lat["min_ms"] <= lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"] <= lat["max_ms"]
    assert lat["load_ms"] > 0 and lat["first_inference_ms"] > 0 and lat["throughput_images_per_s"] > 0
    assert doc["settings"]["iterations"] == 20 and doc["settings"]["batch"] == 1 and doc["settings"]["threads"] == 1
    assert "reference.npz" in doc["settings"]["inputs"]
    assert doc["runtime"]["kind"] == "native" and doc["runtime"]["versions"]["onnxruntime"]
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


def test_schema_validator_reports_problems(x86_run):
    doc = copy.deepcopy(x86_run[1])
    del doc["latency"]["p50_ms"]
    doc["settings"]["iterations"] = 0
    doc["runtime"]["kind"] = "emulated"
    doc["features"]["numel"] = "768"
    problems = bench.schema_errors(doc, bench.REPORT_SCHEMA)
    assert any("latency lacks 'p50_ms'" in p for p in problems)
    assert any("settings.iterations is 0, below the minimum 1" in p for p in problems)
    assert any("runtime.kind" in p for p in problems) and any("features.numel is str" in p for p in problems)


# ------------------------------------------------------------------ baselines and budgets


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
    result = invoke("bench", x86_bundle, *FEW, "--baseline", path, "--json", tmp_path / "new.json")
    assert result.exit_code == 1, result.output
    assert "latency p50 regressed" in result.stderr and "tolerance 10%" in result.stderr
    new = json.loads((tmp_path / "new.json").read_text())
    assert new["passed"] is False and new["baseline"]["items"][0]["regressed"] is True
    # A generous tolerance accepts the same figures.
    result = invoke("bench", x86_bundle, *FEW, "--baseline", path, "--tolerance", "1e9")
    assert result.exit_code == 0, result.output


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
    bundle = _export(bundles_root, str(path), "fp32")
    result = invoke("bench", bundle, *FEW)
    assert result.exit_code == 1, result.output
    assert "latency p50" in result.stderr and "exceeds the profile budget latency_p50_ms" in result.stderr


# ------------------------------------------------------------------ memory


def _matmul_onnx(path: Path, out_features: int) -> Path:
    """input (1,1,32,32) -> reshape (1,1024) -> MatMul with a random (1024, out_features) fp32 initializer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((1024, out_features), dtype=np.float32), "W")
    shape = numpy_helper.from_array(np.array([1, 1024], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]), helper.make_node("MatMul", ["flat", "W"], ["z"])],
        "matmul", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 32, 32])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, out_features])], [weight, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_memory_probe_ranks_a_large_weight_above_a_small_one(tmp_path):
    big = _matmul_onnx(tmp_path / "big.onnx", 12288)  # 1024 x 12288 x 4 B = 50.3 MB
    small = _matmul_onnx(tmp_path / "small.onnx", 12)  # 48 KB
    assert big.stat().st_size > 50e6 > 1e6 > small.stat().st_size
    x = np.random.default_rng(1).standard_normal((1, 1, 32, 32), dtype=np.float32)
    runtime = get_backend("onnxruntime").runtime_modules
    m_big = bench.probe_memory("onnxruntime", None, tmp_path, big.name, {}, 1, x, runs=3, runtime_modules=runtime)
    m_small = bench.probe_memory("onnxruntime", None, tmp_path, small.name, {}, 1, x, runs=3, runtime_modules=runtime)
    assert m_big["peak_rss_mb"] - m_small["peak_rss_mb"] > 40, (m_big, m_small)
    assert m_big["peak_over_baseline_mb"] > 40 > m_small["peak_over_baseline_mb"]
    # the baseline (python + numpy + onnxruntime + runner module) does not depend on the model
    assert abs(m_big["baseline_rss_mb"] - m_small["baseline_rss_mb"]) < 10
    assert not m_big["torch_imported"] and not m_small["torch_imported"]


def test_memory_probe_reports_a_broken_artifact(tmp_path):
    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    x = np.zeros((1, 1, 32, 32), np.float32)
    with pytest.raises(bench.SiftError, match="memory probe could not run the artifact"):
        bench.probe_memory("onnxruntime", None, tmp_path, "broken.onnx", {}, 1, x, runs=1,
                           runtime_modules=get_backend("onnxruntime").runtime_modules)


# ------------------------------------------------------------------ features on the wire


def test_feature_bytes_are_numel_times_dtype_size(x86_run):
    feats = x86_run[1]["features"]
    assert feats["shape"] == [12, 8, 8] and feats["numel"] == 768
    assert feats["bytes_per_image"] == {"fp32": 768 * 4, "fp16": 768 * 2, "int8": 768}
    assert feats["int8_wire"]["scales_bytes_once"] == 12 * 4
    assert feats["compression"]["images"] == 256


def test_compressed_size_is_measured_on_the_real_features(x86_run, x86_bundle):
    feats = x86_run[1]["features"]
    zl = feats["compression"]["codecs"]["zlib"]
    assert zl["round_trip"] is True
    for dtype, raw in feats["bytes_per_image"].items():
        assert 0 < zl["per_image"][dtype]["mean_bytes"] < raw  # differs from raw (the features are sparse)
    # Recompute from the artifact's own features of the reference images: the same numbers come out.
    manifest = read_manifest(x86_bundle)
    with np.load(x86_bundle / bench.PARITY_REFERENCE) as ref:
        images = ref["images"]
    inputs = model_input(images, manifest["model"]["input_size"])
    with open_runner(x86_bundle, manifest, threads=1) as r:
        z = r.infer(inputs)
    q = wire.quantize(z, manifest["features"]["wire_int8"])
    messages = [row.tobytes() for row in q]
    assert all(len(m) == 768 for m in messages)
    packed = [zlib.compress(m, 9) for m in messages]
    assert all(zlib.decompress(p) == m for p, m in zip(packed, messages))
    assert zl["per_image"]["int8"]["mean_bytes"] == pytest.approx(np.mean([len(p) for p in packed]))
    # ...and they are not the size of a trivial message: all-zero features compress to a few bytes.
    assert zl["per_image"]["int8"]["mean_bytes"] > 5 * len(zlib.compress(bytes(768), 9))
    sizes = bench.feature_sizes(z, manifest["features"]["wire_int8"])
    assert sizes["compression"]["codecs"]["zlib"]["per_image"] == zl["per_image"]


def test_wire_accuracy_goes_through_the_float_cloud(x86_run):
    acc = x86_run[1]["features"]["wire_accuracy"]
    assert acc["cloud"].startswith("float cloud.onnx") and acc["images"] == 256
    assert 0.9 <= acc["top1_agreement_int8_vs_fp32_wire"] <= 1.0
    assert acc["accuracy_cost_points"] == pytest.approx((acc["accuracy_fp32_wire"] - acc["accuracy_int8_wire"]) * 100)


# ------------------------------------------------------------------ no torch on the bench path

NO_TORCH = """
import json, sys
sys.modules["torch"] = None  # from here on, `import torch` raises ImportError
for name in {blocked!r}:
    sys.modules[name] = None
from sift_deploy.cli import run
sys.argv = ["sift-deploy", *{args!r}]
code = 0
try:
    run()
except SystemExit as exc:
    code = exc.code or 0
torch = sorted(m for m, v in sys.modules.items() if v is not None and (m == "torch" or m.startswith("torch.")))
print("TORCH_MODULES=" + json.dumps(torch), file=sys.stderr)
sys.exit(code)
"""


def run_blocked(args, blocked=()) -> subprocess.CompletedProcess:
    script = NO_TORCH.format(blocked=list(blocked), args=[str(a) for a in args])
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)


def _no_torch_bench(bundle: Path, tmp_path: Path) -> dict:
    out = tmp_path / "bench.json"
    proc = run_blocked(["bench", bundle, *FEW, "--json", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TORCH_MODULES=[]" in proc.stderr
    doc = json.loads(out.read_text())
    assert doc["torch_imported"] is False and doc["memory"]["torch_imported"] is False
    assert bench.schema_errors(doc, bench.REPORT_SCHEMA) == []
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
    proc = run_blocked(["bench", rpi_bundle, *FEW, "--json", out], blocked=["onnxruntime"])
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
    result = invoke("bench", jetson_bundle, *FEW, "--runtime", "onnxruntime", "--json", tmp_path / "b.json",
                    "--markdown", tmp_path / "b.md")
    assert result.exit_code == 0, result.output  # budgets are not checked for a stand-in
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["runtime"]["kind"] == "stand-in" and "stand-in" in doc["runtime"]["label"]
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
    not_a_report.write_text(json.dumps({"schema_version": bench.SCHEMA_VERSION}))
    assert_one_line_error(invoke("bench", x86_bundle, *FEW, "--baseline", not_a_report), "not a valid bench report")


def test_batch_larger_than_the_reference_set(x86_bundle, tmp_path):
    """Batches cycle through the 256 real images (tiled past 256); per-image figures follow the batch."""
    result = invoke("bench", x86_bundle, "--iterations", "3", "--warmup", "1", "--batch", "300",
                    "--json", tmp_path / "b.json")
    assert result.exit_code == 0, result.output  # budgets do not apply beyond batch 1
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["settings"]["batch"] == 300 and doc["budgets"]["checked"] is False
    assert doc["latency"]["per_image_p50_ms"] == pytest.approx(doc["latency"]["p50_ms"] / 300, rel=1e-3)
