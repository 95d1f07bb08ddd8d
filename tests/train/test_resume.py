"""train --resume: an interrupted run continues from its last epoch's state and ends with the same
weights as an uninterrupted one; a state of another run, or a file that is not ours, is refused."""

from __future__ import annotations

import pickle
import time

import pytest
import torch

from sift_deploy.checkpoint import load_checkpoint
from sift_deploy.errors import SiftError
from sift_deploy.stage_progress import STAGE_LINE_DELAY_S
from sift_deploy.train.loop import Recipe
from sift_deploy.train.objective import ObjectiveWeights
from sift_deploy.train.resume import state_path_for
from sift_deploy.train.run import run_training

from tests.conftest import assert_one_line_error, invoke, write_subset

# 120 train images less 20 aux = 100 at batch 50: 2 steps per epoch, 6 steps in 3 epochs
RECIPE = dict(arch="siftfunnel-cnn", defense="siftfunnel", epochs=3, batch_size=50, flip=True, seed=4, threads=1,
              weights=ObjectiveWeights())


@pytest.fixture(scope="module")
def small_data(fashion_mnist, tmp_path_factory):
    """The first 120 train and 40 test images of the real files: resuming is about steps, not images."""
    return write_subset(tmp_path_factory.mktemp("resume-data"), fashion_mnist, 120, 40)


class Interrupted(Exception):
    pass


def _train(data, out, resume=False, stop_at=None, **changes):
    def on_step(report):
        if stop_at is not None and report.step == stop_at:
            raise Interrupted

    return run_training(Recipe(**{**RECIPE, **changes}), out, data, 32, 0, False, on_step, resume=resume)


def _weights(path):
    return load_checkpoint(path).model.state_dict()


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(small_data, tmp_path):
    straight = tmp_path / "straight.safetensors"
    _train(small_data, straight)
    assert not state_path_for(straight).exists(), "the state must go once the checkpoint is written"

    resumed = tmp_path / "resumed.safetensors"
    with pytest.raises(Interrupted):
        _train(small_data, resumed, stop_at=5)  # in epoch 3: the state of step 4 was written
    assert state_path_for(resumed).exists() and not resumed.exists()
    result = _train(small_data, resumed, resume=True)
    assert result["steps"] == 6 and result["resumed_from_step"] == 4
    assert not state_path_for(resumed).exists()

    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_state_of_another_recipe_is_refused(small_data, tmp_path):
    out = tmp_path / "m.safetensors"
    with pytest.raises(Interrupted):
        _train(small_data, out, stop_at=3)
    with pytest.raises(SiftError, match="belongs to another training run"):
        _train(small_data, out, resume=True, lr=5e-4)
    # the thread count changes only the speed: it may differ
    result = _train(small_data, out, resume=True, threads=2)
    assert result["resumed_from_step"] == 2


def test_cli_refuses_a_state_that_is_a_pickle_of_code(small_data, tmp_path):
    out = tmp_path / "m.safetensors"
    state_path_for(out).write_bytes(pickle.dumps(print))  # loading it unguarded would import a callable
    result = invoke("train", "--data-dir", small_data, "-o", out, "--max-steps", 3, "--threads", 1,
                    "--resume")
    assert result.exit_code == 2
    assert_one_line_error(result, "is not a resumable training state", "delete it")
    assert not out.exists()


def test_a_refused_train_prints_nothing_after_it_returns(small_data, tmp_path, capsys):
    # its "loading data" line waits a second; left pending, it landed in the next command's stderr
    out = tmp_path / "m.safetensors"
    state_path_for(out).write_bytes(pickle.dumps(print))
    assert invoke("train", "--data-dir", small_data, "-o", out, "--resume").exit_code == 2
    capsys.readouterr()
    time.sleep(STAGE_LINE_DELAY_S + 0.5)
    assert "train:" not in capsys.readouterr().err


def test_cli_resume_without_a_state_says_so_and_trains(small_data, tmp_path):
    out = tmp_path / "m.safetensors"
    result = invoke("train", "--data-dir", small_data, "-o", out, "--max-steps", 3, "--threads", 1,
                    "--resume")
    assert result.exit_code == 0, result.output
    assert "no saved state" in result.stderr and out.exists()
