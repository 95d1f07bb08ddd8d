"""sift_deploy/signing.py, `sift-deploy keygen`, `export --sign` and `verify --public-key`: a signed
bundle rejects any edit of its manifest, including the ones hashing alone lets through.

One real bundle (the shipped reference, x86 fp32, signed at export through the CLI) per module;
each attack works on its own copy and is first shown to pass `verify` without a key."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from sift_deploy.bundle import MANIFEST, SIGNATURE
from sift_deploy.documents import parse_document
from sift_deploy.documents.signature import ManifestSignature
from sift_deploy.fileio import sha256_file

from .conftest import assert_one_line_error, invoke

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.onnx legacy exporter


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Path:
    private = tmp_path_factory.mktemp("keys") / "signing.key"
    result = invoke("keygen", "--output", private)
    assert result.exit_code == 0, result.output
    return private


@pytest.fixture(scope="module")
def signed_bundle(keys, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "x86-fp32"
    result = invoke("export", "--target", "x86", "--precision", "fp32", "--calib-count", 64, "--parity-images", 256,
                    "--output", out, "--sign", keys)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def bundle(signed_bundle, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(signed_bundle, copy)
    return copy


def edit_manifest(bundle: Path, change) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    change(manifest)
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def assert_rejected(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("signature: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------ keygen

def test_keygen_writes_a_private_key_only_the_owner_reads(keys):
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert keys.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert Path(f"{keys}.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_keygen_refuses_to_overwrite_without_force(tmp_path):
    private = tmp_path / "k.key"
    assert invoke("keygen", "-o", private).exit_code == 0
    before = private.read_bytes()
    assert_one_line_error(invoke("keygen", "-o", private), "already exists", "--force")
    assert private.read_bytes() == before
    result = invoke("keygen", "-o", private, "--force")
    assert result.exit_code == 0, result.output
    assert private.read_bytes() != before and stat.S_IMODE(private.stat().st_mode) == 0o600


# ------------------------------------------------------------------ a signed bundle

def test_signed_bundle_verifies_with_its_key(signed_bundle, keys):
    document = json.loads((signed_bundle / SIGNATURE).read_text())
    parse_document(ManifestSignature, document, SIGNATURE)
    assert SIGNATURE not in json.loads((signed_bundle / MANIFEST).read_text())["files"]
    result = invoke("verify", signed_bundle, "--public-key", f"{keys}.pub")
    assert result.exit_code == 0, result.output
    assert f"manifest signature valid (key {document['key_id']})" in result.stdout


def test_reindenting_the_manifest_keeps_the_signature(bundle, keys):
    edit_manifest(bundle, lambda m: None)
    assert invoke("verify", bundle, "--public-key", f"{keys}.pub").exit_code == 0


def test_a_plain_edit_is_rejected(bundle, keys):
    edit_manifest(bundle, lambda m: m["model"].update(class_names=["cat"] * 10))
    assert invoke("verify", bundle).exit_code == 0  # the files still match their hashes
    assert_rejected(invoke("verify", bundle, "--public-key", f"{keys}.pub"), "manifest.json was changed")


def test_parity_thresholds_set_to_zero_are_rejected(bundle, keys):
    def loosen(manifest):
        manifest["profile"]["parity"]["fp32"].update(min_cosine=0.0, min_top1_agreement=0.0, max_abs=1e9)

    edit_manifest(bundle, loosen)
    assert invoke("verify", bundle).exit_code == 0  # what an attacker's bundle gets without a key
    assert_rejected(invoke("verify", bundle, "--public-key", f"{keys}.pub"), "manifest.json was changed")


def test_an_int8_edge_swapped_in_with_its_hash_updated_is_rejected(bundle, keys, tmp_path):
    """A real int8 Q/DQ model of the same edge replaces the fp32 file; the manifest's hash follows it."""
    from sift_deploy.backends.onnxruntime.export import quantize_onnx
    from sift_deploy.data.calibration import DEFAULT_CALIBRATION, load_image_file
    from sift_deploy.data.preprocess import model_input

    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    edge = bundle / "edge.fp32.onnx"
    swapped = tmp_path / "edge.int8.onnx"
    quantize_onnx(edge, swapped, model_input(images[:64], 32, 0.5, 0.5), "minmax", tmp_path, min_cosine=None)
    assert swapped.read_bytes() != edge.read_bytes()
    shutil.copyfile(swapped, edge)
    edit_manifest(bundle, lambda m: m["files"]["edge.fp32.onnx"].update(sha256=sha256_file(edge),
                                                                         bytes=edge.stat().st_size))
    without_key = json.loads(invoke("verify", bundle, "--json").stdout)
    assert without_key["file_problems"] == []  # every hash matches: only fp32's tight parity bounds notice
    assert without_key["parity"]["cosine_mean"] < 1 - 1e-6  # it really is another model
    assert_rejected(invoke("verify", bundle, "--public-key", f"{keys}.pub"), "manifest.json was changed")


def test_an_unsigned_bundle_is_rejected_when_a_key_is_required(bundle, keys):
    (bundle / SIGNATURE).unlink()
    assert invoke("verify", bundle).exit_code == 0
    assert_rejected(invoke("verify", bundle, "--public-key", f"{keys}.pub"), "no manifest.sig")


def test_a_signature_by_another_key_is_rejected(bundle, tmp_path):
    other = tmp_path / "other.key"
    assert invoke("keygen", "-o", other).exit_code == 0
    assert_rejected(invoke("verify", bundle, "--public-key", f"{other}.pub"), "not by the given key")


def test_a_forged_signature_is_rejected(bundle, keys):
    document = json.loads((bundle / SIGNATURE).read_text())
    document["signature"] = document["signature"][:-4] + ("AAA=" if not document["signature"].endswith("AAA=") else "BBB=")
    (bundle / SIGNATURE).write_text(json.dumps(document))
    assert_rejected(invoke("verify", bundle, "--public-key", f"{keys}.pub"))


@pytest.mark.parametrize("which", ["missing", "not a key"])
def test_bad_key_files_are_one_line_errors(which, signed_bundle, tmp_path):
    path = tmp_path / "key"
    if which == "not a key":
        path.write_text("hello")
    assert_one_line_error(invoke("verify", signed_bundle, "--public-key", path), str(path))
    result = invoke("export", "--target", "x86", "--output", tmp_path / "out", "--sign", path)
    assert_one_line_error(result, str(path))
    assert not (tmp_path / "out").exists()


def test_a_public_key_cannot_sign(signed_bundle, keys, tmp_path):
    assert_one_line_error(invoke("export", "--target", "x86", "--output", tmp_path / "out", "--sign", f"{keys}.pub"),
                          "not an unencrypted PEM private key")
