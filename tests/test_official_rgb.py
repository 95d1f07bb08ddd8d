"""An RGB model from official-format files, end to end: `convert` with a per-channel normalisation,
`export` for every target with `--mean/--std`, `verify`, `bench`, and `check` at a tiny budget.

The weights are a width-32 (`ndf=32`) SiftFunnel CNN and its unprotected `Classifier_4` twin with 4
classes, trained for a few steps on real RGB photographs (scikit-image's astronaut, coffee, chelsea
and rocket, cut into 32x32 patches; see own_data.py) with the official RGB normalisation, and saved
the way the official code saves them: `{'epoch', 'model': {'module.' + key: tensor}, 'best_cl_acc'}`.
"""

from __future__ import annotations

import json

import pytest
import torch


from sift_deploy.checkpoint import load_checkpoint
from sift_deploy.data.preprocess import PRESETS, Normalization
from sift_deploy.data.sources import load_dataset
from sift_deploy.data.splits import make_splits
from sift_deploy.export import export_bundle
from sift_deploy.models import ModelSpec
from sift_deploy.privacy.budget import PRESETS as BUDGETS, AttackBudget
from sift_deploy.train.loop import Recipe, train_model

from .conftest import assert_one_line_error, invoke
from .own_data import write_photo_patch_folder

pytestmark = [pytest.mark.filterwarnings("ignore::FutureWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RGB_MEAN, RGB_STD = "0.4914,0.4822,0.4465", "0.2023,0.1994,0.2010"
CIFAR = Normalization.of(*PRESETS["cifar10"])
TINY = AttackBudget.preset("fast").with_(
    name="rgb-tiny", aux_images=33, test_images=40, decoder_epochs=1, decoder_width=16, decoder_seeds=(0, 1),
    twin_seeds=(0,), mine_train_pairs=33, mine_heldout_pairs=40, mine_epochs=1, dcor_samples=40,
    whitebox_images=2, whitebox_steps=2, bootstrap_resamples=100)


@pytest.fixture(scope="module")
def rgb(tmp_path_factory):
    """The photo-patch folder and official-format .pth files of the SiftFunnel CNN and its twin."""
    root = tmp_path_factory.mktemp("rgb")
    data = write_photo_patch_folder(root / "photos")
    splits = make_splits(load_dataset(data))
    files = {}
    for arch, defense in (("siftfunnel-cnn", "siftfunnel"), ("plain-cnn", "none")):
        model, _ = train_model(Recipe(arch=arch, defense=defense, batch_size=32, max_steps=4),
                               ModelSpec(arch, 3, 4, 32, width=32), splits.train, CIFAR.mean, CIFAR.std)
        files[arch] = root / f"{arch}.pth"
        torch.save({"epoch": 4, "model": {f"module.{k}": v for k, v in model.state_dict().items()},
                    "best_cl_acc": 25.0}, files[arch])
    return {"root": root, "data": data, **files}


@pytest.fixture(scope="module")
def x86_bundle(rgb):
    return export_bundle(rgb["siftfunnel-cnn"], "x86", "int8", data_dir=rgb["data"], calib_count=32,
                         output=rgb["root"] / "x86", arch="siftfunnel-cnn", normalization=CIFAR).bundle


def test_convert_writes_a_checkpoint_with_per_channel_normalisation(rgb, tmp_path):
    out = tmp_path / "rgb.safetensors"
    result = invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "--mean", RGB_MEAN, "--std", RGB_STD,
                    "-o", out)
    assert result.exit_code == 0, result.output
    assert "3x32x32, 4 classes, width 32" in result.stdout and result.stderr == ""
    ckpt = load_checkpoint(out)
    assert not ckpt.official and ckpt.spec == ModelSpec("siftfunnel-cnn", 3, 4, 32, width=32)
    assert ckpt.metadata["normalization"] == {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2023, 0.1994, 0.2010]}
    assert ckpt.metadata["converted_from"]["epoch"] == 4 and ckpt.metadata["converted_from"]["class"] == "pv4_classifier_4"
    official = load_checkpoint(rgb["siftfunnel-cnn"], arch="siftfunnel-cnn")
    for key, value in official.model.state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[key], value), key

    # the preset gives the same record; without one the official script's RGB normalisation is assumed, said once
    preset = invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "--normalization", "cifar10",
                    "-o", tmp_path / "preset.safetensors")
    assert preset.exit_code == 0 and load_checkpoint(tmp_path / "preset.safetensors").normalization == ckpt.normalization
    assumed = invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "-o", tmp_path / "assumed.safetensors")
    assert assumed.exit_code == 0 and assumed.stderr.count("warning:") == 1 and "assumed" in assumed.stderr

    assert_one_line_error(invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "--mean", "0.5,0.5",
                                 "--std", "0.5", "-o", tmp_path / "bad.safetensors"),
                          "mean has 2 values but the model takes 3 channels")
    assert_one_line_error(invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "--mean", "0.5",
                                 "-o", tmp_path / "bad.safetensors"), "--mean and --std together")
    assert_one_line_error(invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "--normalization",
                                 "imagenet", "-o", tmp_path / "bad.safetensors"), "unknown normalisation 'imagenet'")
    assert_one_line_error(invoke("convert", rgb["siftfunnel-cnn"], "-o", tmp_path / "bad.safetensors"), "--arch")
    assert_one_line_error(invoke("convert", out, "--arch", "siftfunnel-cnn", "-o", tmp_path / "again.safetensors"),
                          "already a sift-deploy checkpoint")
    assert_one_line_error(invoke("convert", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "-o", out),
                          "already exists", "--force")
    # a project checkpoint records its normalisation: another one is refused, the same one accepted
    assert_one_line_error(invoke("export", out, "--normalization", "half", "-o", tmp_path / "b"),
                          "records its normalisation")


def test_x86_bundle_records_per_channel_normalisation_and_verifies(x86_bundle):
    manifest = json.loads((x86_bundle / "manifest.json").read_text())
    assert manifest["input"]["normalization"] == {"mean": list(CIFAR.mean), "std": list(CIFAR.std)}
    assert manifest["model"]["in_channels"] == 3 and manifest["model"]["width"] == 32
    assert manifest["calibration"]["count"] == 32 and "split seed 0" in manifest["calibration"]["source"]
    assert manifest["parity"]["passed"] and manifest["parity"]["images"] == 40
    assert "warnings" not in manifest  # normalisation given, data given: nothing assumed
    result = invoke("verify", x86_bundle)
    assert result.exit_code == 0, result.output
    assert "files match the manifest" in result.stdout


def test_bundle_with_a_scalar_normalisation_still_verifies(x86_bundle, tmp_path):
    """Bundles written before per-channel records hold one number for every channel."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(x86_bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    grey = Normalization.of(0.5, 0.5, 3)
    manifest["input"]["normalization"] = {"mean": 0.5, "std": 0.5}
    (old / "manifest.json").write_text(json.dumps(manifest))
    from sift_deploy.verify import verify_bundle

    report = verify_bundle(old)
    assert report["file_problems"] == []
    # the stored inputs are now normalised as 0.5/0.5 on every channel: parity measures that change
    assert report["parity"]["cosine_mean"] < 1.0
    assert grey.mean == (0.5, 0.5, 0.5)


def test_bench_times_the_rgb_bundle(x86_bundle, tmp_path):
    out = tmp_path / "bench.json"
    result = invoke("bench", x86_bundle, "--iterations", 20, "--warmup", 2, "--threads", 1, "--json-file", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema_version"] == 1 and report["passed"]


def test_check_at_a_tiny_budget_reaches_a_verdict_with_the_official_twin(x86_bundle, rgb, tmp_path, monkeypatch):
    monkeypatch.setitem(BUDGETS, TINY.name, TINY)
    args = ["check", x86_bundle, "--data-dir", rgb["data"], "--budget", TINY.name, "--twin", rgb["plain-cnn"],
            "--report-dir", tmp_path / "reports"]
    result = invoke(*args)
    assert result.exit_code in (0, 1), result.output
    report = json.loads((tmp_path / "reports" / "check.json").read_text())
    assert report["data"]["dataset"] == "photos" and report["data"]["sizes"] == {"train": 167, "aux": 33, "test": 40}
    assert report["accuracy"]["images"] == 40 and report["twin"] == str(rgb["plain-cnn"])
    assert report["data"]["budget_cuts"] == []  # the budget fits the data: nothing cut
    # an official file records no data set: said once, and recorded
    assert result.stderr.count("warning:") == 1 and "records no data set; the check uses photos" in result.stderr
    assert report["data"]["warnings"] == [line for line in report["data"]["warnings"] if "records no data set" in line]
    assert "> warning: siftfunnel-cnn.pth records no data set" in (tmp_path / "reports" / "check.md").read_text()
    if result.exit_code == 1:
        assert "bound broken:" in result.stderr
    # the bundle's normalisation is the official file's: another one is refused before any attack
    assert_one_line_error(invoke(*args, "--normalization", "half"), "exported with normalisation")


@pytest.mark.parametrize("target", ["jetson", pytest.param("rpi", marks=pytest.mark.slow)])
def test_other_targets_export_verify_and_bench(rgb, target, tmp_path):
    if target == "rpi":
        pytest.importorskip("litert_torch", reason="litert-torch is not installed (pip install 'sift-deploy[rpi-export]')")
    out = tmp_path / target
    result = invoke("export", rgb["siftfunnel-cnn"], "--arch", "siftfunnel-cnn", "--mean", RGB_MEAN, "--std", RGB_STD,
                    "--data-dir", rgb["data"], "-t", target, "--calib-count", 32, "-o", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["normalization"]["std"] == list(CIFAR.std)
    # a jetson bundle's engine is built on the Jetson: here its Q/DQ ONNX runs as the labelled stand-in
    stand_in = ["--runtime", "onnxruntime"] if target == "jetson" else []
    verify = invoke("verify", out, *stand_in)
    assert verify.exit_code == 0, verify.output
    bench = invoke("bench", out, "--iterations", 10, "--warmup", 2, "--threads", 1, *stand_in)
    assert bench.exit_code == 0, bench.output
