"""report.grid_png: the reconstructions PNG carries each row's SSIM, drawn under its label and as a text chunk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sift_deploy.report import grid_png


def test_grid_png_carries_the_ssim_of_each_row(tmp_path):
    rng = np.random.default_rng(0)
    rows = {"original": rng.random((4, 1, 8, 8)), "deployed": rng.random((4, 1, 8, 8))}
    grid_png(rows, tmp_path / "plain.png")
    grid_png(rows, tmp_path / "ssim.png", ssim={"deployed": 0.6774})
    with Image.open(tmp_path / "ssim.png") as image:
        assert image.text == {"SSIM deployed": "0.6774"}
        with_ssim = np.asarray(image.convert("L"))
    with Image.open(tmp_path / "plain.png") as image:
        assert image.text == {}
        plain = np.asarray(image.convert("L"))
    assert with_ssim.shape == plain.shape
    changed_rows = np.nonzero((with_ssim != plain).any(axis=1))[0]
    side, pad = 8 * 3, 4
    assert changed_rows.size and changed_rows.min() >= pad + side + pad  # only the deployed row's label area
    assert not (with_ssim != plain)[:, 260:].any()  # the images themselves are untouched


def test_check_reports_carry_each_rows_ssim(tmp_path):
    from sift_deploy.report import row_ssim

    rng = np.random.default_rng(0)
    original = rng.random((12, 1, 32, 32)).astype(np.float32)
    grid = {"original": original, "exact": original.copy(), "noise": rng.random((12, 1, 32, 32)).astype(np.float32)}
    ssim = row_ssim(grid)
    assert set(ssim) == {"exact", "noise"} and ssim["exact"] == pytest.approx(1.0) and abs(ssim["noise"]) < 0.1
    grid_png(grid, tmp_path / "g.png", ssim=ssim)
    assert Image.open(tmp_path / "g.png").text["SSIM exact"] == "1.0000"
