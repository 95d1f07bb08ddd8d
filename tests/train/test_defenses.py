"""Which defence trains which architecture (`train --defense`): NoPeek on the unprotected twin and the
autoencoder baseline with cross-entropy train and record only the weights they use; the combinations
that make no sense are refused in one line before any data is read."""

from __future__ import annotations

import json

import pytest

from sift_deploy.checkpoint import load_checkpoint
from sift_deploy.train.loop import Recipe
from sift_deploy.train.objective import ObjectiveWeights
from tests.conftest import assert_one_line_error, invoke

WEIGHTS = ObjectiveWeights(alpha=4.5, beta=0.4, gamma=0.1, l1=0.03, smoothing=0.35)


def test_each_recipe_records_only_the_weights_its_defense_uses():
    def recorded(defense):
        return Recipe(arch="plain-cnn", defense=defense, weights=WEIGHTS).as_dict().get("weights")

    assert recorded("siftfunnel") == {"alpha": 4.5, "beta": 0.4, "gamma": 0.1, "l1": 0.03, "smoothing": 0.35}
    assert recorded("nopeek") == {"beta": 0.4}
    assert recorded("none") is None


def test_nopeek_trains_the_unprotected_twin_and_records_its_weight(fashion_mnist_subset, tmp_path):
    out = tmp_path / "nopeek.safetensors"
    result = invoke("train", "--arch", "plain-cnn", "--defense", "nopeek", "--beta", "1.5", "--data-dir",
                    fashion_mnist_subset, "-o", out, "--max-steps", "2", "--batch-size", "32", "--threads", "1")
    assert result.exit_code == 0, result.output
    epoch_line = next(line for line in result.stderr.splitlines() if line.startswith("epoch "))
    assert " ce " in epoch_line and " dcor2 " in epoch_line and "pearson" not in epoch_line, epoch_line
    metrics = json.loads(out.with_name("nopeek.metrics.json").read_text())
    assert metrics["training"]["defense"] == "nopeek" and metrics["training"]["weights"] == {"beta": 1.5}
    assert set(metrics["final_terms"]) == {"ce", "dcor2"} and 0.0 <= metrics["final_terms"]["dcor2"] <= 1.0
    ckpt = load_checkpoint(out)
    assert ckpt.spec.arch == "plain-cnn" and ckpt.metadata["training"]["weights"] == {"beta": 1.5}


def test_the_autoencoder_baseline_trains_with_cross_entropy(fashion_mnist_subset, tmp_path):
    out = tmp_path / "ae.safetensors"
    result = invoke("train", "--arch", "ae-cnn", "--defense", "none", "--data-dir", fashion_mnist_subset, "-o", out,
                    "--max-steps", "1", "--batch-size", "32", "--threads", "1")
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out)
    assert ckpt.model.split_point == "encoder" and ckpt.metadata["transmitted_shape"] == [64, 8, 8]
    assert "weights" not in ckpt.metadata["training"]


@pytest.mark.parametrize("arch, defense, fragments", [
    ("siftfunnel-cnn", "nopeek", ("nopeek is a baseline", "--defense siftfunnel", "--arch plain-cnn")),
    ("siftfunnel-resnet18", "nopeek", ("--arch plain-resnet18",)),
    ("ae-cnn", "siftfunnel", ("ae-cnn has no funnel", "--defense none")),
    ("plain-cnn", "siftfunnel", ("plain-cnn has no funnel",)),
    ("plain-cnn", "dp", ("unknown defense 'dp'", "siftfunnel, nopeek, none")),
])
def test_defenses_that_do_not_fit_the_architecture_are_refused(tmp_path, arch, defense, fragments):
    # --data-dir names nothing: the refusal comes before any data is read
    out = tmp_path / "x.safetensors"
    result = invoke("train", "--arch", arch, "--defense", defense, "--data-dir", tmp_path / "nowhere", "-o", out)
    assert_one_line_error(result, *fragments)
    assert not out.exists()
