"""sift_deploy/fileio.py: an output that cannot be written is refused before any work, for every
command that writes (export, train, check reports, bench files), with one line and exit 2."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from sift_deploy.errors import SiftError
from sift_deploy.fileio import atomic_dir, check_writable

from .conftest import assert_one_line_error, invoke

# /proc accepts no new files, as root too; a path under a regular file cannot be created by anyone
PROC_OUTPUT = Path("/proc/self/sift-out")


def unwritable_outputs(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {"proc": PROC_OUTPUT / "out", "under a file": a_file / "deeper" / "out"}


def test_proc_is_refused():
    with pytest.raises(SiftError, match="does not accept new files"):
        check_writable(PROC_OUTPUT / "bundle", force=False)


def test_a_path_under_a_file_is_refused(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(SiftError, match="is a file, not a folder"):
        check_writable(a_file / "sub" / "bundle", force=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="runs as root, and root writes into a chmod 555 folder anyway")
def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(SiftError, match="does not accept new files"):
            check_writable(folder / "new" / "bundle", force=False)
    finally:
        folder.chmod(0o755)


def test_a_writable_path_passes_and_the_probe_leaves_nothing(tmp_path):
    check_writable(tmp_path / "not" / "yet" / "there", force=False)
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_proc_without_a_traceback():
    with pytest.raises(SiftError, match="does not accept new files"):
        with atomic_dir(PROC_OUTPUT / "bundle"):
            pass


@pytest.mark.parametrize("where", ["proc", "under a file"])
def test_export_fails_at_once(where, tmp_path):
    output = unwritable_outputs(tmp_path)[where]
    started = time.perf_counter()
    result = invoke("export", "--target", "x86", "--output", output)
    assert_one_line_error(result, "cannot write", str(output))
    assert time.perf_counter() - started < 10  # before loading the checkpoint, calibration and parity


@pytest.mark.parametrize("where", ["proc", "under a file"])
def test_train_fails_before_training(where, tmp_path, fashion_mnist_subset):
    output = unwritable_outputs(tmp_path)[where] / "model.safetensors"
    result = invoke("train", "--output", output, "--data-dir", fashion_mnist_subset, "--max-steps", "1")
    assert_one_line_error(result, "cannot write", str(output))
    assert "test accuracy" not in result.output


@pytest.mark.parametrize("where", ["proc", "under a file"])
def test_check_fails_before_the_attacks(where, tmp_path):
    report_dir = unwritable_outputs(tmp_path)[where]
    result = invoke("check", tmp_path / "no-bundle-needed", "--report-dir", report_dir)
    assert_one_line_error(result, "cannot write", str(report_dir))


@pytest.mark.parametrize("option", ["--json-file", "--markdown"])
def test_bench_fails_before_timing(option, tmp_path):
    path = unwritable_outputs(tmp_path)["proc"] / "bench.out"
    result = invoke("bench", tmp_path / "no-bundle-needed", option, path)
    assert_one_line_error(result, "cannot write", str(path))


def test_train_saves_the_model_elsewhere_when_the_output_breaks_during_training(tmp_path, fashion_mnist_subset,
                                                                                  monkeypatch):
    """The output folder is replaced by a file while training runs (a real failure, not a mock):
    the trained model is saved in the current folder and the one-line error says where."""
    from sift_deploy.checkpoint import load_checkpoint
    from sift_deploy.train.loop import Recipe
    from sift_deploy.train.run import run_training

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)

    def break_the_output(report) -> None:
        if out_dir.is_dir():
            out_dir.rmdir()
            out_dir.write_text("the output folder became a file")

    recipe = Recipe(arch="siftfunnel-cnn", defense="siftfunnel", epochs=1.0, batch_size=32, lr=1e-3, flip=False,
                    seed=0, threads=1, max_steps=2)
    with pytest.raises(SiftError) as caught:
        run_training(recipe, out_dir / "model.safetensors", fashion_mnist_subset, 32, 0, False, break_the_output)
    message = str(caught.value)
    assert "could not write" in message and "saved to" in message
    rescued = Path(message.rsplit("saved to ", 1)[1].removesuffix(" instead"))
    assert rescued.parent.parent == cwd and rescued.name == "model.safetensors"
    assert rescued.with_name("model.metrics.json").is_file()
    assert load_checkpoint(rescued).spec.arch == "siftfunnel-cnn"
