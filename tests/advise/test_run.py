"""run_advise and `sift-deploy advise` end to end on the shipped reference, kept small: two cuts,
an x86 profile at fp32 (no int8 calibration search), the 300/200-image Fashion-MNIST subset, a tiny
attack budget and 20 timed calls. These prove the plumbing, the files and the report's shape; the
figures themselves are tests/advise/test_reference_advise.py's (slow)."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from sift_deploy.advise import AdviseOptions, run_advise
from sift_deploy.advise.render import JSON_FILE, PNG_FILE, markdown_table
from sift_deploy.cli import app
from sift_deploy.documents.advise_report import AdviseReport
from sift_deploy.privacy.budget import AttackBudget
from sift_deploy.profiles import TARGETS_DIR

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
TINY = AttackBudget.preset("fast").with_(name="tiny", aux_images=40, test_images=40, decoder_epochs=1, decoder_width=16,
                                         dcor_samples=40, bootstrap_resamples=50)


@pytest.fixture(scope="module")
def fp32_profile(tmp_path_factory):
    text = (TARGETS_DIR / "x86-64.toml").read_text().replace('default_precision = "int8"', 'default_precision = "fp32"')
    path = tmp_path_factory.mktemp("profile") / "x86-fp32.toml"
    path.write_text(text.replace('name = "x86-64"', 'name = "x86-fp32"'))
    return path


def _options(profile, data_dir, output, **changes) -> AdviseOptions:
    settings = dict(target=str(profile), cuts=["cbam", "block3"], budget=TINY, output=output, data_dir=data_dir,
                    latency_iterations=20, latency_warmup=2, calib_count=16, max_leakage_ssim=0.9)
    return AdviseOptions(**{**settings, **changes})


@pytest.fixture(scope="module")
def advised(fp32_profile, fashion_mnist_subset, tmp_path_factory):
    output = tmp_path_factory.mktemp("advise") / "out"
    seen = []
    report = run_advise(_options(fp32_profile, fashion_mnist_subset, output), on_cut=lambda i, n, c: seen.append((i, n, c["name"])))
    return report, output, seen


def test_each_cut_is_exported_measured_and_reported_with_progress(advised):
    report, output, seen = advised
    assert seen == [(1, 2, "cbam"), (2, 2, "block3")]
    cbam, block3 = report["cuts"]
    assert cbam["default"] and cbam["z_shape"] == [12, 8, 8] and block3["z_shape"] == [256, 4, 4]
    assert cbam["bytes"]["int8"] == 768 and block3["bytes"]["int8"] == 4096
    for cut in report["cuts"]:
        manifest = json.loads((output / "bundles" / cut["name"] / "manifest.json").read_text())
        assert manifest["model"]["split_point"] == cut["name"] and manifest["precision"] == "fp32"
        assert cut["edge_latency"]["p50_ms"] > 0 and cut["cloud_latency"]["p50_ms"] > 0
        assert cut["end_to_end_ms"] == pytest.approx(cut["edge_latency"]["p50_ms"] + cut["transfer_ms"] +
                                                     cut["cloud_latency"]["p50_ms"])
        ssim, acc = cut["leakage"]["decoder"]["ssim"], cut["accuracy_int8_wire"]
        assert ssim["low"] <= ssim["mean"] <= ssim["high"] and ssim["n"] == 40
        assert acc["low"] <= acc["mean"] <= acc["high"] and acc["n"] == 200 and acc["mean"] > 0.6
        assert 0 < cut["leakage"]["dcor"] <= 1
    # the funnel sends fewer bytes, so less time on the wire (latencies are not compared: the machine is shared)
    assert cbam["bytes"]["int8_compressed"] < block3["bytes"]["int8_compressed"]
    assert cbam["transfer_ms"] < block3["transfer_ms"] and cbam["precision"] == block3["precision"] == "fp32"
    assert any(cut["pareto"] for cut in report["cuts"])


def test_the_report_validates_and_the_files_are_written(advised):
    report, output, _ = advised
    assert AdviseReport.model_validate(json.loads((output / JSON_FILE).read_text())).model_dump(mode="json") == report
    with Image.open(output / PNG_FILE) as png:
        assert png.size == (900, 560)
    fastest = min(report["cuts"], key=lambda c: c["end_to_end_ms"])  # every cut is within the loose bound 0.9
    assert report["recommendation"]["cut"] == fastest["name"] and report["settings"]["budget"]["name"] == "tiny"
    assert "| cbam (default) | 12x8x8 | 768 |" in markdown_table(report)


def test_an_existing_output_is_refused_before_any_export(advised, fp32_profile, fashion_mnist_subset):
    _, output, _ = advised
    with pytest.raises(Exception, match="already exists; pass --force"):
        run_advise(_options(fp32_profile, fashion_mnist_subset, output))


@pytest.mark.parametrize("args, fragment", [
    (["--cuts", "funnel"], "has no cut 'funnel'"),
    (["--bandwidth", "0"], "--bandwidth must be positive"),
    (["--max-leakage", "1.5"], "--max-leakage is an SSIM"),
    (["--budget", "huge"], "unknown attack budget"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path):
    result = CliRunner().invoke(app, ["advise", "--output", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_command_prints_the_table_and_exits_1_when_no_cut_is_within_the_bound(fp32_profile, fashion_mnist_subset,
                                                                                    tmp_path, monkeypatch):
    import sift_deploy.privacy.budget as budget_module

    monkeypatch.setitem(budget_module.PRESETS, "fast", TINY)
    result = CliRunner().invoke(app, ["advise", "--target", str(fp32_profile), "--cuts", "cbam", "--max-leakage",
                                      "0.001", "--data-dir", str(fashion_mnist_subset), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1, result.output
    assert "cut 1/1 cbam" in result.stderr and "recommended: None" in result.stdout
    assert "advise: cut 1/1 cbam: running the float model" in result.stderr, "a log shows the stage each cut is in"
    assert any(line.startswith("| cbam") and line.endswith("|") for line in result.stdout.splitlines()), \
        "in a log the table is Markdown, one line per cut"
    assert json.loads((tmp_path / "o" / JSON_FILE).read_text())["recommendation"]["cut"] is None
