"""`export --precision auto` from the user's side: its bounds and their defaults."""

from __future__ import annotations

from typer.testing import CliRunner

from sift_deploy.bounds import load_bounds
from sift_deploy.cli import app
from sift_deploy.precision.run import search_bounds
from tests.conftest import assert_one_line_error


def test_search_bounds_default_to_the_bounds_file():
    limits = load_bounds()
    bounds = search_bounds()
    assert bounds.max_acc_drop_points == limits["accuracy"]["max_drop_points"]
    assert bounds.max_leak_increase_ssim == limits["leakage"]["max_ssim_increase"]
    assert bounds.max_iterations == limits["search"]["max_iterations"]
    assert search_bounds(0.5, 0.01, 3).max_iterations == 3


def test_export_auto_refuses_a_zero_iteration_cap(tmp_path):
    result = CliRunner().invoke(app, ["export", "--precision", "auto", "--max-iterations", "0",
                                      "-o", str(tmp_path / "b")])
    assert_one_line_error(result, "--max-iterations")
    assert not (tmp_path / "b").exists()
