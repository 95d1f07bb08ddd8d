"""Any named cut end to end: `export --split-at` writes a bundle that records the cut, and `verify`,
`bench` and the check stages work on it (the reference at `triplet`, the official block_idx 1 layer,
64x16x16 at 32x32). Small data (the 300/200-image Fashion-MNIST subset) and a tiny attack budget."""

from __future__ import annotations

import json

import pytest

from sift_deploy.check import CheckContext, accuracy, decoder
from sift_deploy.privacy.budget import AttackBudget
from tests.conftest import invoke

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]
TINY = AttackBudget.preset("fast").with_(name="tiny", aux_images=40, test_images=40, decoder_epochs=1, decoder_width=16,
                                         decoder_seeds=(0,), bootstrap_resamples=50)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, fashion_mnist_subset):
    out = tmp_path_factory.mktemp("split-at") / "x86-int8-triplet"
    result = invoke("export", "--target", "x86", "--split-at", "triplet", "--calib-count", "64",
                    "--data-dir", fashion_mnist_subset, "--output", out, "--json")
    assert result.exit_code == 0, result.output
    return out


def test_the_bundle_records_the_cut(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["model"]["split_point"] == manifest["features"]["split_point"] == "triplet"
    assert manifest["features"]["shape"] == [None, 64, 16, 16]
    assert len(manifest["features"]["wire_int8"]["scales"]) == 64


def test_verify_and_bench_work_on_the_cut(bundle, tmp_path):
    assert invoke("verify", bundle).exit_code == 0
    report_path = tmp_path / "bench.json"
    result = invoke("bench", bundle, "--iterations", "20", "--warmup", "2", "--json-file", report_path)
    assert result.exit_code in (0, 1), result.output  # 1: a latency budget of the profile, not an error
    report = json.loads(report_path.read_text())
    assert report["features"]["shape"] == [64, 16, 16] and report["features"]["bytes_per_image"]["int8"] == 16384


def test_check_stages_attack_the_cut(bundle, fashion_mnist_subset):
    ctx = CheckContext.open(bundle, TINY.aux_images, TINY.test_images, fashion_mnist_subset)
    assert ctx.checkpoint.model.split_point == "triplet"
    assert ctx.float_side.z_test.shape[1:] == ctx.deployed_side.z_test.shape[1:] == (64, 16, 16)
    section = accuracy.run(ctx, TINY, 0, lambda *_: None)
    assert section.float > 0.7 and section.top1_agreement > 0.95
    attack = decoder.run(ctx, TINY, 0, lambda *_: None)
    assert 0 < attack.deployed.ssim.mean < 1


def test_an_unknown_cut_is_one_line(fashion_mnist_subset, tmp_path):
    result = invoke("export", "--split-at", "funnel", "--output", tmp_path / "b", "--data-dir", fashion_mnist_subset)
    assert result.exit_code == 2 and "has no cut 'funnel'" in result.stderr and "triplet, cbam" in result.stderr
