"""A new user's own data (item: "your own data works the first time"): real MNIST digits written as an
image folder, through train -> export -> check, and the refusals and warnings around data that is not
the checkpoint's.

Cheap tests use untrained models saved with metadata that records the MNIST folder (the checks read
only the metadata); the end-to-end run trains for a few steps through the CLI.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sift_deploy.check.context import check_data
from sift_deploy.checkpoint import load_checkpoint, save_checkpoint
from sift_deploy.data.sources import load_dataset
from sift_deploy.data.splits import make_splits
from sift_deploy.export import export_bundle
from sift_deploy.models import ModelSpec, build_model
from sift_deploy.privacy.budget import PRESETS as BUDGETS, AttackBudget

from .conftest import assert_one_line_error, invoke
from .own_data import write_mnist_folder

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

SPLIT_SEED = 3


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """1,200 real MNIST digits, 120 per class, as PNG files in one folder per digit."""
    return write_mnist_folder(tmp_path_factory.mktemp("own") / "digits")


def untrained(tmp_path, digits, classes: int = 10, arch: str = "siftfunnel-cnn", name: str = "mnist.safetensors"):
    """An untrained model saved with the metadata a `train` on the digit folder records (split seed 3)."""
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch, 1, classes, 32)).eval()
    info = make_splits(load_dataset(digits), seed=SPLIT_SEED).info.as_dict()
    metadata = {"normalization": {"mean": [0.1307], "std": [0.3081]}, "class_names": [str(i) for i in range(classes)],
                "dataset": info}
    return save_checkpoint(model, metadata, tmp_path / name)


@pytest.fixture(scope="module")
def mnist_bundle(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("own-bundle")
    ckpt = untrained(root, digits)
    twin = untrained(root, digits, arch="plain-cnn", name="twin.safetensors")
    return export_bundle(ckpt, "x86", "int8", data_dir=digits, calib_count=32, output=root / "x86").bundle, ckpt, twin


def test_export_without_data_dir_refuses_to_use_fashion_mnist(digits, tmp_path):
    ckpt = untrained(tmp_path, digits)
    result = invoke("export", ckpt, "-o", tmp_path / "b")
    assert_one_line_error(result, "was trained on digits", "calibrates and checks parity on Fashion-MNIST",
                          f"--data-dir {digits}")
    assert not (tmp_path / "b").exists()


def test_export_uses_the_recorded_split_seed(mnist_bundle, digits):
    bundle, _, _ = mnist_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert f"split seed {SPLIT_SEED}" in manifest["calibration"]["source"]
    splits = make_splits(load_dataset(digits), seed=SPLIT_SEED)
    with np.load(bundle / "parity" / "reference.npz") as ref:
        stored = ref["images"]
    # parity ran on the checkpoint's test split, not on the split seed 0 would give
    assert np.array_equal(stored, splits.test.images[:len(stored)])
    assert not np.array_equal(stored, make_splits(load_dataset(digits), seed=0).test.images[:len(stored)])
    assert manifest["parity"]["images"] == len(splits.test) == 200


def test_export_with_other_data_warns_loudly(digits, fashion_mnist_subset, tmp_path):
    ckpt = untrained(tmp_path, digits)
    result = invoke("export", ckpt, "--data-dir", fashion_mnist_subset, "--calib-count", 16, "-o", tmp_path / "b")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "holds fashion-mnist" in warnings[0] and "trained on digits" in warnings[0]
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["warnings"] == [warnings[0].removeprefix("warning: ")]


def test_a_model_of_another_class_count_is_refused(digits, tmp_path):
    five = untrained(tmp_path, digits, classes=5, name="five.safetensors")
    assert_one_line_error(invoke("export", five, "--data-dir", digits, "-o", tmp_path / "b"),
                          "the model has 5 classes but digits", "has 10")
    ckpt = load_checkpoint(five)
    with pytest.raises(Exception, match="the model has 5 classes but digits .* has 10"):
        check_data(ckpt, ckpt, digits, None)


def test_check_refuses_fashion_mnist_for_an_mnist_checkpoint(mnist_bundle, tmp_path):
    bundle, ckpt, twin = mnist_bundle
    result = invoke("check", bundle, "--checkpoint", ckpt, "--twin", twin, "--report-dir", tmp_path / "r")
    assert_one_line_error(result, "was trained on digits", "check attacks Fashion-MNIST", "--data-dir")


def test_check_split_options(mnist_bundle, digits):
    _, path, _ = mnist_bundle
    ckpt = load_checkpoint(path)
    splits, warnings = check_data(ckpt, ckpt, digits, None)
    assert warnings == [] and splits.info.seed == SPLIT_SEED
    assert splits.info.sizes == {"train": 833, "aux": 167, "test": 200}
    more, _ = check_data(ckpt, ckpt, digits, 500)
    assert more.info.sizes == {"train": 500, "aux": 500, "test": 200}
    assert np.array_equal(more.test.images, splits.test.images)  # the test split never moves


def test_train_measures_normalisation_keeps_digits_unflipped_and_takes_split_sizes(digits, tmp_path):
    out = tmp_path / "t.safetensors"
    result = invoke("train", "--data-dir", digits, "-o", out, "--max-steps", 1, "--batch-size", 16, "--threads", 1,
                    "--aux-split", 300, "--test-split", 0.2, "--split-seed", 4)
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(out).metadata
    assert meta["training"]["flip"] is False
    assert meta["normalization_source"] == "measured on the train split"
    mean, std = meta["normalization"]["mean"], meta["normalization"]["std"]
    assert len(mean) == 1 and 0.10 < mean[0] < 0.16 and 0.28 < std[0] < 0.34  # MNIST: 0.1307 / 0.3081
    assert meta["dataset"]["sizes"] == {"train": 660, "aux": 300, "test": 240}
    assert meta["dataset"]["seed"] == 4 and meta["dataset"]["test_fraction"] == 0.2

    given = tmp_path / "g.safetensors"
    result = invoke("train", "--data-dir", digits, "-o", given, "--max-steps", 1, "--batch-size", 16, "--threads", 1,
                    "--normalization", "half", "--flip")
    assert result.exit_code == 0, result.output
    meta = load_checkpoint(given).metadata
    assert meta["normalization"] == {"mean": [0.5], "std": [0.5]} and meta["training"]["flip"] is True


def test_train_bad_options_name_what_exists(tmp_path):
    out = tmp_path / "x.safetensors"
    assert_one_line_error(invoke("train", "-o", out, "--arch", "foo"), "unknown architecture 'foo'",
                          "siftfunnel-cnn", "plain-cnn", "siftfunnel-vgg16bn")
    assert_one_line_error(invoke("train", "-o", out, "--mean", "0.5"), "--mean and --std together")
    assert_one_line_error(invoke("train", "-o", out, "--aux-split", "1.5"), "--aux-split 1.5")


def test_shipped_reference_checkpoints_load_as_recorded():
    """They record their normalisation and flips: the reference its train split's measured mean/std (README),
    the twin 0.5/0.5 (--normalization half); a scalar means every channel."""
    from sift_deploy.checkpoint import REFERENCE_TWIN

    for path, mean, std in ((None, (0.2864,), (0.3526,)), (REFERENCE_TWIN, (0.5,), (0.5,))):
        ckpt = load_checkpoint(path)
        assert ckpt.mean == mean and ckpt.std == std
        assert ckpt.metadata["training"]["flip"] is True


@pytest.mark.slow
def test_train_export_check_on_an_mnist_folder_reaches_a_verdict(digits, tmp_path, monkeypatch):
    small = AttackBudget.preset("fast").with_(
        name="own-small", aux_images=400, test_images=200, decoder_epochs=2, decoder_width=32, decoder_seeds=(0, 1, 2),
        twin_seeds=(0,), mine_train_pairs=300, mine_heldout_pairs=150, mine_epochs=2, dcor_samples=150,
        whitebox_images=4, whitebox_steps=5, bootstrap_resamples=200)
    monkeypatch.setitem(BUDGETS, small.name, small)
    common = ["--data-dir", digits, "--batch-size", 32, "--threads", 1]
    model, twin = tmp_path / "m.safetensors", tmp_path / "twin.safetensors"
    assert invoke("train", "-o", model, "--max-steps", 40, *common).exit_code == 0
    assert invoke("train", "-o", twin, "--arch", "plain-cnn", "--defense", "none", "--max-steps", 40, *common).exit_code == 0
    bundle = tmp_path / "bundle"
    exported = invoke("export", model, "--data-dir", digits, "--calib-count", 64, "-o", bundle)
    assert exported.exit_code == 0, exported.output
    assert "warning:" not in exported.stderr
    result = invoke("check", bundle, "--data-dir", digits, "--twin", twin, "--budget", small.name,
                    "--report-dir", tmp_path / "reports")
    assert result.exit_code in (0, 1), result.output
    report = json.loads((tmp_path / "reports" / "check.json").read_text())
    # the verdict path: every bound evaluated, exit code = verdict, broken bounds named with their figures
    assert report["passed"] is (result.exit_code == 0)
    broken = [b for b in report["bounds"] if not b["passed"]]
    assert result.stderr.count("bound broken:") == len(broken)
    # 167 aux pairs against 400: the decoder keeps its steps with more epochs, and the cut is said
    assert report["data"]["aux_used"] == 167 and report["budget"]["decoder_epochs"] > small.decoder_epochs
    assert any("167 attacker pairs" in cut for cut in report["data"]["budget_cuts"])
    assert "warning: the aux split has 167 attacker pairs" in result.stderr
