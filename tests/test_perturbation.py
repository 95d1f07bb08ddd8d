"""The perturbation baselines on z (noise, dropout): the numpy draw, its refusals, the export option
that records it in the bundle, and the check sides that measure on perturbed z."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sift_deploy.bundle import read_manifest, write_manifest
from sift_deploy.errors import SiftError
from sift_deploy.perturbation import Perturbation, from_manifest, perturb
from tests.conftest import invoke


def test_noise_and_dropout_have_the_asked_strength():
    z = np.full((200, 8, 4, 4), 3.0, np.float32)
    noisy = perturb(z, Perturbation(noise_std=0.8), np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.std() == pytest.approx(0.8, rel=0.03)
    assert noisy.mean() == pytest.approx(3.0, abs=0.02)
    dropped = perturb(z, Perturbation(drop_rate=0.8), np.random.default_rng(0))
    assert set(np.unique(dropped)) == {0.0, 3.0}  # unscaled, as the official mask
    assert (dropped == 0).mean() == pytest.approx(0.8, abs=0.01)


def test_no_perturbation_sends_z_as_it_is():
    z = np.ones((2, 3), np.float32)
    assert perturb(z, None, np.random.default_rng(0)) is z
    assert from_manifest({"features": {}}) is None
    assert from_manifest({"features": {"perturbation": Perturbation().as_manifest()}}) is None


@pytest.mark.parametrize("noise, drop, word", [(-0.1, 0.0, "--feature-noise"), (float("nan"), 0.0, "--feature-noise"),
                                                 (0.0, 1.0, "--feature-dropout"), (0.0, -0.2, "--feature-dropout")])
def test_bad_strengths_are_refused(noise, drop, word):
    with pytest.raises(SiftError, match=word):
        Perturbation(noise, drop)


def test_export_refuses_a_bad_rate_before_any_work(tmp_path):
    out = tmp_path / "bundle"
    result = invoke("export", "--target", "x86", "--feature-dropout", "1.5", "-o", out)
    assert result.exit_code == 2 and "--feature-dropout must be a rate in [0, 1)" in result.stderr
    assert not out.exists()


def test_export_records_the_perturbation_and_keeps_parity_on_the_artifact(tmp_path):
    out = tmp_path / "bundle"
    result = invoke("export", "--target", "x86", "--precision", "fp32", "--feature-noise", "0.8",
                    "--parity-images", "256", "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["features"]["perturbation"]["noise_std"] == 0.8
    assert manifest["features"]["perturbation"]["drop_rate"] == 0.0
    assert manifest["parity"]["cosine_mean"] > 0.99999  # parity compares the artifact unperturbed
    assert from_manifest(read_manifest(out)) == Perturbation(0.8, 0.0)
    assert invoke("verify", out).exit_code == 0


def test_check_sides_see_the_perturbed_z_with_the_same_draws(reference_bundle, tmp_path):
    from sift_deploy.check.context import CheckContext

    plain = reference_bundle("x86")
    perturbed = tmp_path / "perturbed"
    shutil.copytree(plain, perturbed)
    manifest = read_manifest(perturbed)
    manifest["features"]["perturbation"] = Perturbation(noise_std=0.8, drop_rate=0.5).as_manifest()
    write_manifest(perturbed, manifest)
    ctx, base = (CheckContext.open(b, 64, 64) for b in (perturbed, plain))
    z_float, z_deployed = ctx.float_side.z_aux, ctx.deployed_side.z_aux
    assert np.array_equal(z_float == 0, z_deployed == 0)  # the same mask on both sides
    assert (z_float == 0).mean() == pytest.approx(0.5, abs=0.03)
    kept = z_float != 0
    assert (z_float - base.float_side.z_aux)[kept].std() == pytest.approx(0.8, rel=0.05)
    assert np.array_equal(ctx.twin_side.z_aux, base.twin_side.z_aux)  # the attack-strength reference is not perturbed
    assert "z perturbed before the wire: Gaussian noise std 0.8 + dropout rate 0.5" in ctx.runtime_label
