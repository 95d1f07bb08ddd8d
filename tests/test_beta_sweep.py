"""benchmarks/beta_sweep.py on the committed check reports: ratios to the twin, the three conditions,
and the table and plot it writes."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import ROOT, loaded_script

RUNS = ROOT / "benchmarks" / "privacy-runs"


@pytest.fixture(scope="module")
def sweep():
    with loaded_script("benchmarks/beta_sweep.py") as module:
        yield module


def test_a_point_is_measured_against_its_reports_twin(sweep):
    check = json.loads((RUNS / "fmnist-siftfunnel-b2-e10-run2-x86-int8-reference" / "check.json").read_text())
    metrics = json.loads((RUNS / "fmnist-siftfunnel-b2-e10-run2.metrics.json").read_text())
    row = sweep.point_row("run 2", metrics, check, twin_accuracy=0.9321)
    deployed, twin = check["attack"]["deployed"]["ssim"], check["attack"]["twin"]["ssim"]["mean"]
    assert row["ssim_ratio"] == pytest.approx(deployed["mean"] / twin)
    assert row["ssim_ratio_interval"][1] == pytest.approx(deployed["high"] / twin)
    assert row["mine_ratio"] == pytest.approx(check["information"]["deployed"]["mi_nats"] / check["information"]["twin"]["mi_nats"])
    assert row["gap_points"] == pytest.approx((0.9321 - metrics["test_accuracy"]) * 100)
    assert row["meets"] == {"accuracy": row["gap_points"] <= 3, "ssim": row["ssim_ratio_interval"][1] <= 0.5,
                            "mine": row["mine_ratio"] <= 0.5}
    assert row["beta"] == metrics["training"]["weights"]["beta"] == 2.0


def test_it_writes_the_table_and_the_plot(sweep, tmp_path):
    spec = json.loads((RUNS / "beta-sweep.json").read_text())
    for name in {spec["twin_metrics"], *(p[k] for p in spec["points"] for k in ("metrics", "check"))}:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(RUNS / name, tmp_path / name)
    (tmp_path / "beta-sweep.json").write_text(json.dumps(spec))
    assert sweep.main(["--points", str(tmp_path / "beta-sweep.json")]) == 0
    table = (tmp_path / "beta-sweep.md").read_text()
    assert table.count("\n| ") == len(spec["points"]) + 1  # header + one row per point
    assert (tmp_path / "beta-sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "beta-sweep.rows.json").read_text())
    assert [r["beta"] for r in rows] == sorted(r["beta"] for r in rows)
