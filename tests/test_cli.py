"""The command line as a user sees it: exit codes, one-line errors, tables and JSON, files written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sift_deploy import __version__, checkpoint, inspect as inspect_module
from sift_deploy.checkpoint import REFERENCE_CHECKPOINT, load_checkpoint
from .conftest import assert_one_line_error, invoke
from sift_deploy.fileio import sha256_file


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"sift-deploy {__version__}"


def test_help_lists_the_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "inspect", "serve", "infer"):
        assert command in result.stdout
    result = invoke("inspect", "--help")
    assert result.exit_code == 0 and "--json" in result.stdout and "--arch" in result.stdout


# ------------------------------------------------------------------ inspect

def test_inspect_tables(tiny_checkpoint):
    result = invoke("inspect", tiny_checkpoint.path)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for expected in ("siftfunnel-cnn", "cbam", "12x8x8", "768 values", "3,072 B", "1,536 B", "768 B",
                     "9,202", "1,502,248", "fashion-mnist", "12.34%", __version__):
        assert expected in out, expected
    assert "split seed" in out and "7" in out.split("split seed", 1)[1].splitlines()[0]


def test_inspect_json(tiny_checkpoint):
    result = invoke("inspect", tiny_checkpoint.path, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    model, meta = doc["model"], doc["metadata"]
    assert model["transmitted_shape"] == [12, 8, 8]
    assert model["transmitted_bytes"] == {"fp32": 3072, "fp16": 1536, "int8": 768}
    assert model["edge"] == {"params": 9202, "macs": 1502248}
    assert model["cloud"]["params"] + model["edge"]["params"] == model["total_params"] == model["registered_params"]
    assert model["unused_params"] == 0
    assert meta["split_seed"] == 7 and meta["dataset"] == "fashion-mnist"
    assert meta["recipe"]["weights"]["beta"] == 2.0 and meta["metrics"]["test_accuracy"] == 0.1234
    assert meta["tool_version"] == __version__
    assert doc["checkpoint"]["sha256"] == sha256_file(tiny_checkpoint.path) and not doc["checkpoint"]["reference"]


def test_inspect_lists_the_cuts_with_z_shape_and_bytes(tiny_checkpoint):
    doc = json.loads(invoke("inspect", tiny_checkpoint.path, "--json").stdout)
    cuts = {c["name"]: c for c in doc["cuts"]}
    assert list(cuts) == ["triplet", "cbam", "triplet_cloud", "block3", "block4"]
    assert cuts["cbam"]["default"] and cuts["cbam"]["transmitted_bytes"]["int8"] == 768
    assert cuts["triplet"]["block_idx"] == 1 and cuts["triplet"]["transmitted_shape"] == [64, 16, 16]
    assert cuts["cbam"]["edge_macs"] == doc["model"]["edge"]["macs"]
    table = invoke("inspect", tiny_checkpoint.path).stdout
    assert "Cut points" in table and "64x16x16" in table and "16,384" in table


def test_inspect_official_pth_needs_arch(tiny_checkpoint, tmp_path):
    import torch

    path = tmp_path / "official.pth"
    torch.save({"epoch": 1, "model": tiny_checkpoint.model.state_dict(), "best_cl_acc": 0.0}, path)
    assert_one_line_error(invoke("inspect", path), "--arch")
    result = invoke("inspect", path, "--arch", "siftfunnel-cnn", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["checkpoint"]["format"] == "official state_dict"
    assert doc["metadata"]["recipe"] is None and doc["model"]["edge"]["macs"] == 1502248
    table = invoke("inspect", path, "--arch", "siftfunnel-cnn")
    assert table.exit_code == 0 and "not recorded" in table.stdout and "normalisation assumed" in table.stdout


def test_inspect_without_argument_uses_the_reference(tiny_checkpoint, monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoint, "REFERENCE_CHECKPOINT", tiny_checkpoint.path)
    monkeypatch.setattr(inspect_module, "REFERENCE_CHECKPOINT", tiny_checkpoint.path)
    result = invoke("inspect", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["checkpoint"]["reference"] and doc["checkpoint"]["path"] == str(tiny_checkpoint.path)
    missing = tmp_path / "gone.safetensors"
    monkeypatch.setattr(checkpoint, "REFERENCE_CHECKPOINT", missing)
    monkeypatch.setattr(inspect_module, "REFERENCE_CHECKPOINT", missing)
    assert_one_line_error(invoke("inspect"), "reference checkpoint", "CHECKPOINT")


def test_inspect_shipped_reference():
    if not REFERENCE_CHECKPOINT.exists():
        pytest.skip(f"the reference checkpoint {REFERENCE_CHECKPOINT.name} has not been trained yet (sift-deploy train)")
    result = invoke("inspect", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["arch"] == "siftfunnel-cnn" and doc["model"]["transmitted_shape"] == [12, 8, 8]
    assert doc["model"]["edge"] == {"params": 9202, "macs": 1502248}
    assert doc["metadata"]["dataset"] == "fashion-mnist" and doc["metadata"]["split_seed"] == 0
    assert doc["metadata"]["metrics"]["test_accuracy"] > 0.8


def test_inspect_bad_inputs(tiny_checkpoint, tmp_path):
    assert_one_line_error(invoke("inspect", tmp_path / "missing.safetensors"), "does not exist")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    assert_one_line_error(invoke("inspect", corrupt), "corrupt")
    assert_one_line_error(invoke("inspect", tiny_checkpoint.path, "--arch", "resnet9000"), "unknown architecture")
    assert_one_line_error(invoke("inspect", tiny_checkpoint.path, "--arch", "plain-cnn"), "not plain-cnn")


def test_console_script_error_has_no_traceback(tmp_path):
    """Through the real entry point (python -m sift_deploy), as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "sift_deploy", "inspect", str(tmp_path / "nope.safetensors")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: checkpoint {tmp_path / 'nope.safetensors'} does not exist"]
    assert proc.stdout == ""


# ------------------------------------------------------------------ train

def test_train_tiny_run_then_refuses_to_overwrite(fashion_mnist_subset, tmp_path):
    out = tmp_path / "run" / "tiny.safetensors"
    args = ["train", "--data-dir", fashion_mnist_subset, "-o", out, "--max-steps", "3", "--threads", "1", "--seed", "5"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    metrics_path = out.with_name("tiny.metrics.json")
    assert out.exists() and metrics_path.exists()
    metrics = json.loads(metrics_path.read_text())
    assert metrics["steps"] == 3 and metrics["test_images"] == 200 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["training"]["seed"] == 5 and metrics["checkpoint"] == str(out)
    assert f"wrote {out}" in result.stdout

    # 250 train images (300 minus 50 aux) at batch 128: 2 steps per epoch -> a line at step 2 and at the end (step 3)
    epoch_lines = [line for line in result.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 2, result.stderr
    assert epoch_lines[0].startswith("epoch 1.00/6 step 2/3 loss ")
    assert epoch_lines[1].startswith("epoch 1.50/6 step 3/3 loss ")
    for term in ("task", "dcor2", "l1", "pearson", "train_acc", "elapsed"):
        assert term in epoch_lines[0]
    stage_lines = [line.split(", about")[0] for line in result.stderr.splitlines() if line.startswith("train: ")]
    # a stage without a count is printed only once it has lasted STAGE_LINE_DELAY_S (so that a refusal stays one
    # line): on a quick load "loading data" is never announced
    expected = ["train: loading data", "train: training", "train: training 1/3", "train: training 2/3", "train: training 3/3"]
    assert stage_lines in (expected, expected[1:]), result.stderr

    ckpt = load_checkpoint(out)
    assert ckpt.metadata["dataset"]["source"] == str(fashion_mnist_subset)
    assert ckpt.metadata["metrics"]["steps"] == 3

    before = (sha256_file(out), sha256_file(metrics_path), out.stat().st_mtime_ns)
    again = invoke(*args[:-2], "--seed", "6")
    assert_one_line_error(again, "already exists", "--force")
    assert (sha256_file(out), sha256_file(metrics_path), out.stat().st_mtime_ns) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny.metrics.json", "tiny.safetensors"]


def test_train_bad_options_exit_2(tmp_path):
    assert_one_line_error(invoke("train", "-o", tmp_path / "x.pt"), ".safetensors")
    assert_one_line_error(invoke("train", "-o", tmp_path / "x.safetensors", "--epochs", "0"), "positive")
    assert_one_line_error(invoke("train", "-o", tmp_path / "x.safetensors", "--arch", "plain-cnn"), "--defense none")
    assert_one_line_error(invoke("train", "-o", tmp_path / "x.safetensors", "--data-dir", tmp_path / "nowhere"),
                          "does not exist")
