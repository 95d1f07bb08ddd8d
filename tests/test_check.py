"""`sift-deploy check`: the gate's verdicts on real bundles, its bounds files, reports and bad input.

The verdict tests run the whole check (real runtimes, the real Fashion-MNIST splits) with a small
attacker (`SMALL`: narrow decoders trained for three short epochs on 2,000 aux pairs, small MINE
and white-box runs) so one check takes about a minute on 2 cores. That attacker is too weak to pass the attack-strength bound, which is
why no test here expects a full pass; the strength of the shipped `fast` preset is measured and
reported in the README. Bundles are exported once per module from the shipped checkpoints.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from sift_deploy.bounds import DEFAULT_BOUNDS, caps_from_report, load_bounds, parse_bounds
from sift_deploy.check import evaluate_bounds, run_check
from sift_deploy.checkpoint import REFERENCE_TWIN
from sift_deploy.data.calibration import DEFAULT_CALIBRATION, load_image_file
from sift_deploy.errors import SiftError
from sift_deploy.export import export_bundle
from sift_deploy.privacy.budget import AttackBudget
from tests.conftest import invoke

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SMALL = AttackBudget.preset("fast").with_(
    name="small", aux_images=2000, test_images=300, decoder_epochs=3, decoder_width=64, decoder_batch=32,
    mine_train_pairs=600, mine_heldout_pairs=300, mine_epochs=2, dcor_samples=300, whitebox_images=4,
    whitebox_steps=5, bootstrap_resamples=300)
SSIM_CAP, MI_CAP, ACCURACY = "SSIM cap (deployed, upper 95%)", "MI cap (deployed, nats)", "accuracy drop"


def failed(report: dict) -> set[str]:
    return {b["name"] for b in report["bounds"] if not b["passed"]}


def one_line_error(result, *fragments: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, fashion_mnist_dir) -> dict[str, Path]:
    """x86 int8 bundles: the reference, its unprotected twin, and the reference calibrated so that it clips."""
    root = tmp_path_factory.mktemp("check-bundles")
    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    # a dark calibration set: every activation range (and the wire scale) is fitted far below what
    # real images produce, so the deployed edge clips its transmitted features
    dark = root / "dark-calibration.npz"
    np.savez(dark, images=(images[:128] // 16).astype(np.uint8))
    def export(name: str, checkpoint=None, **options) -> Path:  # parity on the committed hold-out images
        return export_bundle(checkpoint, "x86", "int8", output=root / name, parity_on_test_split=False, **options).bundle

    return {"reference": export("reference"), "twin": export("twin", REFERENCE_TWIN),
            "clipping": export("clipping", calib=dark)}


@pytest.fixture(scope="module")
def reference_report(bundles) -> dict:
    report, _ = run_check(bundles["reference"], load_bounds(), SMALL, seed=0)
    return report


@pytest.mark.slow
def test_reference_report_is_complete_and_keeps_accuracy(reference_report):
    report = reference_report
    assert report["schema_version"] == 1 and report["budget"]["name"] == "small"
    acc = report["accuracy"]
    assert acc["images"] == 10000 and acc["float"] > 0.87
    assert abs(acc["drop_points"]) < 1.0 and acc["top1_agreement"] > 0.99
    assert ACCURACY not in failed(report)
    attack = report["attack"]
    for side in ("float", "deployed", "transfer", "twin"):
        ssim = attack[side]["ssim"]
        assert ssim["low"] <= ssim["mean"] <= ssim["high"]
    assert len(attack["float"]["ssim"]["per_seed"]) == len(SMALL.decoder_seeds)
    assert attack["paired"]["ssim"]["seeds"] == 3 and attack["paired"]["ssim"]["images"] == SMALL.test_images
    # the unprotected twin leaks far more than the SiftFunnel edge, even to this small attacker
    assert attack["twin"]["ssim"]["mean"] > attack["float"]["ssim"]["high"]
    for side in ("float", "deployed", "twin"):
        info = report["information"][side]
        assert np.isfinite(info["mi_nats"]) and 0 < info["dcor"] < 1
    # contrast figures of the unprotected twin: more accurate, and its features depend more on x
    assert acc["twin"] > acc["float"]
    assert report["information"]["twin"]["dcor"] > report["information"]["float"]["dcor"]
    assert set(report["whitebox"]) == {"float", "fake_quantised", "twin"}


@pytest.mark.slow
def test_same_bundle_and_seed_give_the_same_verdict(bundles, reference_report):
    again, _ = run_check(bundles["reference"], load_bounds(), SMALL, seed=0)
    assert [b["passed"] for b in again["bounds"]] == [b["passed"] for b in reference_report["bounds"]]
    for side in ("float", "deployed", "twin"):
        assert again["attack"][side]["ssim"]["mean"] == pytest.approx(reference_report["attack"][side]["ssim"]["mean"], abs=1e-6)
    assert again["information"]["float"]["mi_nats"] == pytest.approx(reference_report["information"]["float"]["mi_nats"], abs=1e-6)


@pytest.mark.slow
def test_unprotected_edge_fails_the_caps_taken_from_the_siftfunnel_model(bundles, reference_report):
    caps = parse_bounds(tomllib.loads(caps_from_report(reference_report, load_bounds())), "caps")
    float_ssim = reference_report["attack"]["float"]["ssim"]["high"]
    assert caps["leakage"]["max_ssim"] == pytest.approx(float_ssim + 0.03, abs=1e-4)
    # the protected model itself stays under its own caps ...
    assert SSIM_CAP not in failed({"bounds": evaluate_bounds(reference_report, caps)})
    # ... a bundle whose edge is the unprotected twin breaks them, by name
    leaky, _ = run_check(bundles["twin"], caps, SMALL, seed=0)
    broken = failed(leaky)
    assert SSIM_CAP in broken, leaky["bounds"]
    assert leaky["attack"]["deployed"]["ssim"]["mean"] > caps["leakage"]["max_ssim"]
    assert ACCURACY not in broken  # its own int8 export is fine; the failure is leakage, not accuracy


@pytest.mark.slow
def test_clipping_calibration_fails_on_accuracy_not_as_a_privacy_gain(bundles, monkeypatch, tmp_path):
    monkeypatch.setattr(AttackBudget, "preset", classmethod(lambda cls, name: SMALL))
    caps = tmp_path / "caps.toml"
    result = invoke("check", bundles["clipping"], "--report-dir", tmp_path / "reports", "--write-caps", caps)
    assert result.exit_code == 1, result.output
    assert "bound broken: accuracy drop:" in " ".join(result.stderr.split())
    report = json.loads((tmp_path / "reports" / "check.json").read_text())
    acc = report["accuracy"]
    assert acc["drop_points"] > 1.0 and ACCURACY in failed(report)
    assert acc["wire_int8_drop_points"] > 1.0
    # the reports: one JUnit test case per bound, the broken ones marked as failures; the grid
    suite = ET.parse(tmp_path / "reports" / "check.junit.xml").getroot()
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == {b["name"] for b in report["bounds"]}
    assert cases[ACCURACY].find("failure") is not None
    assert int(suite.get("failures")) == len(failed(report))
    assert "accuracy drop" in (tmp_path / "reports" / "check.md").read_text()
    assert (tmp_path / "reports" / "reconstructions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = load_bounds(caps)  # --write-caps produced a valid bounds file
    assert written["leakage"]["max_ssim"] == pytest.approx(report["attack"]["float"]["ssim"]["high"] + 0.03, abs=1e-4)


# ------------------------------------------------------------------ bounds logic, no attacks

def synthetic_report(drop=0.2, ssim_upper=0.01, twin=0.8, deployed_ssim=0.4, mi=(2.0, 2.1)) -> dict:
    interval = lambda m: {"mean": m, "low": m - 0.01, "high": m + 0.01}  # noqa: E731
    return {
        "accuracy": {"float": 0.9, "deployed": 0.9 - drop / 100, "deployed_wire_int8": 0.9, "drop_points": drop,
                     "wire_int8_drop_points": 0.0},
        "attack": {"paired": {"ssim": {"mean": ssim_upper / 2, "upper": ssim_upper, "seeds": 3, "images": 10},
                              "psnr": {"mean": 0.0, "upper": 0.1}},
                   "float": {"ssim": interval(0.4), "psnr": interval(15.0)},
                   "deployed": {"ssim": interval(deployed_ssim), "psnr": interval(15.0)},
                   "twin": {"ssim": interval(twin)}, "baselines": {"label_only_ssim": 0.45}},
        "information": {"float": {"mi_nats": mi[0]}, "deployed": {"mi_nats": mi[1]}},
    }


@pytest.mark.parametrize("changes, broken", [
    ({}, set()),
    ({"drop": 1.5}, {ACCURACY}),
    ({"ssim_upper": 0.05}, {"SSIM increase (upper 95%)"}),
    ({"twin": 0.6}, {"attack strength: SSIM against the unprotected twin"}),
    ({"mi": (2.0, 2.4)}, {"MI increase (nats)"}),
])
def test_default_bounds_name_what_breaks(changes, broken):
    assert failed({"bounds": evaluate_bounds(synthetic_report(**changes), load_bounds())}) == broken


def test_optional_caps_apply_only_when_set():
    bounds = load_bounds()
    names = {b["name"] for b in evaluate_bounds(synthetic_report(), bounds)}
    assert SSIM_CAP not in names and MI_CAP not in names
    bounds["leakage"].update(max_ssim=0.3, max_mi_nats=3.0)
    assert failed({"bounds": evaluate_bounds(synthetic_report(), bounds)}) == {SSIM_CAP}


@pytest.mark.parametrize("text, fragment", [
    ("schema_version = 1\n[accuracy]\nmax_drop_point = 1\n", "unknown field(s) max_drop_point"),
    ("schema_version = 1\n[accuracy]\nmax_drop_points = '1'\n", "'max_drop_points' must be float"),
    ("schema_version = 1\n[accuracy]\nmax_drop_points = true\n", "'max_drop_points' must be float"),
    ("schema_version = 1\n[privacy]\nx = 1\n", "unknown field(s) privacy"),
    ("[accuracy]\nmax_drop_points = 1\n", "lacks the field 'schema_version'"),
    ("schema_version = 1\n[accuracy]\nmax_drop_points = 1\n", "lacks the field 'leakage'"),
    ("schema_version = 1\naccuracy = 3\n", "[accuracy] must be a table"),
    ("schema_version = 1\n[accuracy\n", "is not valid TOML"),
])
def test_bad_bounds_files(tmp_path, text, fragment):
    path = tmp_path / "bounds.toml"
    path.write_text(text)
    with pytest.raises(SiftError, match=None) as info:
        load_bounds(path)
    assert fragment in str(info.value)
    one_line_error(invoke("check", tmp_path, "--bounds", path), fragment)


def test_default_bounds_file_is_valid_and_sane():
    bounds = load_bounds(DEFAULT_BOUNDS)
    assert bounds["accuracy"]["max_drop_points"] == 1.0
    assert bounds["leakage"]["max_ssim_increase"] == 0.03 and bounds["attack"]["min_twin_ssim"] == 0.75


# ------------------------------------------------------------------ bad input to the command

def test_missing_and_tampered_bundles(reference_bundle, tmp_path):
    one_line_error(invoke("check", tmp_path / "nothing"), "does not exist")
    copy = tmp_path / "tampered"
    shutil.copytree(reference_bundle("x86", "int8"), copy)
    cloud = copy / "cloud.onnx"
    cloud.write_bytes(cloud.read_bytes()[:-1] + b"\0")
    one_line_error(invoke("check", copy, "--report-dir", tmp_path / "reports"), "cloud.onnx")
    assert not (tmp_path / "reports").exists()


def test_data_folder_without_the_splits(reference_bundle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(invoke("check", reference_bundle("x86", "int8"), "--data-dir", empty, "--report-dir", tmp_path / "r"))
    assert not (tmp_path / "r").exists()


def test_report_dir_that_is_a_file(reference_bundle, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("keep me")
    one_line_error(invoke("check", reference_bundle("x86", "int8"), "--report-dir", target), "is a file")
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("args, fragment", [
    (["--seed", "abc"], "Invalid value for '--seed'"),
    (["--budget", "quick"], "unknown attack budget 'quick'"),
    (["--decoder-pairing", "shared"], "decoder pairing must be one of independent, branched; got 'shared'"),
])
def test_console_script_gives_one_line_for_bad_options(args, fragment, tmp_path):
    result = subprocess.run([sys.executable, "-c", "from sift_deploy.cli import run; run()", "check", str(tmp_path), *args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_a_weak_attack_names_its_fixes():
    report = synthetic_report(twin=0.728)
    report["data"] = {"aux_used": 1389, "sizes": {"train": 6944, "aux": 1389, "test": 1667}}
    report["budget"] = {"decoder_epochs": 15}
    twin = next(b for b in evaluate_bounds(report, load_bounds()) if b["name"].startswith("attack strength"))
    assert not twin["passed"]
    for fix in ("15 epochs on 1389 aux pairs", "--aux-split", "--budget full", "--twin"):
        assert fix in twin["detail"]
    passing = next(b for b in evaluate_bounds(synthetic_report(twin=0.8), load_bounds()) if b["name"].startswith("attack"))
    assert passing["passed"] and "--aux-split" not in passing["detail"]
