"""`export --precision auto` on the shipped reference (and the plain-CNN twin, a second backbone):
both bounds met with at least as many int8 layers as the fixed rules, and the bundle verifies and
shows its choice. Minutes per target on 2 cores: slow tier."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from sift_deploy.checkpoint import REFERENCE_CHECKPOINT
from sift_deploy.cli import app
from sift_deploy.export import export_bundle

pytestmark = pytest.mark.slow
TWIN = REFERENCE_CHECKPOINT.with_name("plain-cnn-fmnist.safetensors")


def fixed_rule_int8(manifest: dict, layers: int) -> int:
    """How many of the backend's layers its fixed rule makes int8 (read from a plain int8 bundle)."""
    q = manifest["export"]["details"]["quantization"]
    if manifest["backend"] == "onnxruntime":
        return len(q["quantized_convs"])
    if manifest["backend"] == "tensorrt":
        return layers - len(q["parity_guard"]["kept_float"])
    tail = q["float_tail"]
    return layers - (len(tail["modules"]) if tail["used"] else 0)


@pytest.mark.parametrize("checkpoint,target", [(None, "x86"), (None, "jetson"), (None, "rpi"), (TWIN, "x86")])
def test_auto_meets_both_bounds_with_at_least_the_fixed_rules_int8_layers(checkpoint, target, tmp_path, fashion_mnist_dir):
    fixed = export_bundle(checkpoint, target, "int8", output=tmp_path / "fixed", parity_on_test_split=False).manifest
    outcome = export_bundle(checkpoint, target, "auto", output=tmp_path / "auto")
    record = outcome.manifest["precision_search"]
    assert outcome.passed and record["met"], record["unmet"]
    int8 = sum(p == "int8" for p in record["layers"].values())
    assert int8 >= fixed_rule_int8(fixed, len(record["layers"]))
    assert record["pareto_png"] in outcome.manifest["files"]
    assert record["seconds"] < 600

    verified = CliRunner().invoke(app, ["verify", str(tmp_path / "auto")])
    assert verified.exit_code == 0, verified.output
    assert "auto precision" in verified.stdout
    shown = CliRunner().invoke(app, ["inspect", str(tmp_path / "auto")])
    assert shown.exit_code == 0 and f"{int8} of {len(record['layers'])} layers int8" in shown.stdout
