"""sift_deploy/verify.py and `sift-deploy verify`: re-hash every file of a bundle, re-run parity, name tampering.

One bundle (the shipped reference checkpoint, x86 fp32, parity on the committed hold-out images) is
exported once per module; each test that changes files works on its own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sift_deploy.bundle import MANIFEST
from sift_deploy.verify import verify_bundle
from tests.conftest import assert_one_line_error, invoke

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.onnx legacy exporter


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def fresh_bundle(reference_bundle) -> Path:
    return reference_bundle("x86", "fp32")  # the session's; tests that change a bundle change a copy (`bundle`)


@pytest.fixture
def bundle(fresh_bundle, tmp_path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(fresh_bundle, copy)
    return copy


def assert_tampered(result, *names: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(names), result.stderr
    for name, line in zip(sorted(names), sorted(lines)):
        assert line.startswith("tampered: ") and name in line, line


def test_fresh_bundle_verifies(fresh_bundle):
    before = _tree(fresh_bundle)
    result = invoke("verify", fresh_bundle)
    assert result.exit_code == 0, result.output
    manifest = json.loads((fresh_bundle / MANIFEST).read_text())
    assert f"{len(manifest['files'])} files match the manifest" in result.stdout
    assert "cosine of z" in result.stdout and "top-1 agreement" in result.stdout
    assert _tree(fresh_bundle) == before  # verify reads, never writes


def test_verify_json_report(fresh_bundle):
    result = invoke("verify", fresh_bundle, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["file_problems"] == []
    assert report["backend"] == "onnxruntime" and report["precision"] == "fp32" and report["target"] == "x86-64"
    assert report["cloud"] == "onnxruntime"
    parity = report["parity"]
    assert parity["images"] == 256 and parity["runtime"] == "onnxruntime"
    assert parity["cosine_mean"] > 0.99999 and parity["top1_agreement"] >= 0.999 and parity["failures"] == []


def test_verify_agrees_with_the_export_parity(fresh_bundle):
    manifest = json.loads((fresh_bundle / MANIFEST).read_text())
    report = verify_bundle(fresh_bundle)
    assert report["parity"]["top1_agreement"] == pytest.approx(manifest["parity"]["top1_agreement"], abs=0.01)
    assert report["parity"]["cosine_mean"] == pytest.approx(manifest["parity"]["cosine_mean"], abs=1e-6)


def test_one_modified_byte_of_the_edge_is_named(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    edge = bundle / manifest["edge_file"]
    data = bytearray(edge.read_bytes())
    data[len(data) // 2] ^= 0x01
    edge.write_bytes(bytes(data))
    result = invoke("verify", bundle)
    assert_tampered(result, manifest["edge_file"])
    assert "was modified" in result.stderr
    report = verify_bundle(bundle)
    assert not report["passed"] and report["file_problems"] == [f"{manifest['edge_file']} was modified (sha256 differs from the manifest)"]
    assert "parity" not in report  # a tampered artifact is never run


def test_modified_parity_reference_is_named(bundle):
    path = bundle / "parity" / "reference.npz"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert_tampered(invoke("verify", bundle), "parity/reference.npz")


def test_a_deleted_file_is_named(bundle):
    (bundle / "cloud.onnx").unlink()
    result = invoke("verify", bundle)
    assert_tampered(result, "cloud.onnx")
    assert "cloud.onnx is missing" in result.stderr


def test_an_extra_file_is_named(bundle):
    (bundle / "extra.bin").write_bytes(b"not part of the bundle")
    (bundle / "parity" / "notes.txt").write_text("added later")
    result = invoke("verify", bundle)
    assert_tampered(result, "extra.bin", "parity/notes.txt")
    assert "extra.bin is not listed in the manifest" in result.stderr


def test_several_problems_are_all_named(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    (bundle / manifest["edge_file"]).write_bytes(b"replaced")
    (bundle / "profile.toml").unlink()
    (bundle / "payload.sh").write_text("echo hi\n")
    assert_tampered(invoke("verify", bundle), manifest["edge_file"], "profile.toml", "payload.sh")


def test_folder_without_manifest(bundle):
    (bundle / MANIFEST).unlink()
    assert_one_line_error(invoke("verify", bundle), "no manifest.json")


@pytest.mark.parametrize("content", ['{"schema_version": 1, "backend": ', "\x00\xff\xfe", "[1, 2, 3]", '{"schema_version": 99}'])
def test_corrupt_manifest(bundle, content):
    (bundle / MANIFEST).write_bytes(content.encode("latin-1"))
    assert_one_line_error(invoke("verify", bundle), str(bundle / MANIFEST))


@pytest.mark.parametrize("key", ["files", "edge_file", "backend"])
def test_manifest_missing_a_key(bundle, key):
    manifest = json.loads((bundle / MANIFEST).read_text())
    del manifest[key]
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", bundle), f"lacks '{key}'")


def test_manifest_with_files_of_the_wrong_type(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"] = ["cloud.onnx"]
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", bundle), "files")


def test_not_a_bundle(tmp_path):
    assert_one_line_error(invoke("verify", tmp_path / "absent"), "does not exist")
    a_file = tmp_path / "file.txt"
    a_file.write_text("hello")
    assert_one_line_error(invoke("verify", a_file), "is a file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(invoke("verify", empty), "no manifest.json")


def test_manifest_pointing_the_edge_outside_its_hashed_files(bundle, tmp_path):
    manifest = json.loads((bundle / MANIFEST).read_text())
    outside = tmp_path / "evil.onnx"
    shutil.copy(bundle / manifest["edge_file"], outside)
    manifest["edge_file"] = "../evil.onnx"
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    result = invoke("verify", bundle)
    assert_tampered(result, "../evil.onnx")
    assert "not among its hashed files" in result.stderr


def test_manifest_missing_what_parity_needs(bundle):
    manifest = json.loads((bundle / MANIFEST).read_text())
    del manifest["profile"]
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    assert_one_line_error(invoke("verify", bundle), "malformed entry", "profile")


# ------------------------------------------------------------------ without the target's runtime

@pytest.fixture(scope="module")
def jetson_bundle(tmp_path_factory) -> Path:
    """A real Jetson bundle exported here, where TensorRT is missing (its edge is the ONNX the engine is built from)."""
    from sift_deploy.backends import get_backend
    from sift_deploy.export import export_bundle

    if get_backend("tensorrt").available()[0]:
        pytest.skip("TensorRT and a GPU are here, so a Jetson bundle's parity runs natively")
    out = tmp_path_factory.mktemp("verify") / "jetson-fp32"
    outcome = export_bundle(None, "jetson", "fp32", output=out, calib_count=64, parity_on_test_split=False)
    assert outcome.passed, outcome.manifest["parity"]["failures"]
    return out


def test_jetson_bundle_without_tensorrt_checks_files_and_says_how_to_run_parity(jetson_bundle):
    result = invoke("verify", jetson_bundle)
    assert result.exit_code == 0, result.output
    manifest = json.loads((jetson_bundle / MANIFEST).read_text())
    assert f"{len(manifest['files'])} files match the manifest" in result.stdout
    said = " ".join(result.stdout.split())
    assert "parity not re-run" in said and "TensorRT" in said and "--runtime onnxruntime" in said
    report = json.loads(invoke("verify", jetson_bundle, "--json").stdout)
    assert report["passed"] and report["file_problems"] == [] and "parity" not in report


def test_jetson_bundle_without_tensorrt_still_names_tampering(jetson_bundle, tmp_path):
    copy = tmp_path / "jetson"
    shutil.copytree(jetson_bundle, copy)
    edge = copy / json.loads((copy / MANIFEST).read_text())["edge_file"]
    edge.write_bytes(edge.read_bytes() + b"\0")
    assert_tampered(invoke("verify", copy), edge.name)


def test_require_parity_makes_a_missing_runtime_an_error(jetson_bundle):
    assert_one_line_error(invoke("verify", jetson_bundle, "--require-parity"), "--require-parity", "TensorRT")
    assert invoke("verify", jetson_bundle, "--runtime", "onnxruntime", "--require-parity").exit_code == 0


def _verify_with_blocked_modules(bundle: Path, *args: str) -> subprocess.CompletedProcess:
    """`sift-deploy verify` in a process where torch and onnxruntime cannot be imported (a device without them)."""
    code = ("import sys\n"
            "for name in ('torch', 'onnxruntime'):\n"
            "    sys.modules[name] = None\n"
            "from sift_deploy.cli import run\n"
            f"sys.argv = ['sift-deploy', 'verify', {str(bundle)!r}, *{list(args)!r}]\n"
            "run()\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_torch_free_device_without_the_bundles_runtime(fresh_bundle):
    result = _verify_with_blocked_modules(fresh_bundle)
    assert result.returncode == 0, result.stderr
    assert "files match the manifest" in result.stdout
    assert "parity not re-run" in result.stdout and "onnxruntime is not installed" in result.stdout
    strict = _verify_with_blocked_modules(fresh_bundle, "--require-parity")
    assert strict.returncode == 2 and "Traceback" not in strict.stderr
    assert strict.stderr.strip().startswith("error: parity cannot be re-run here")


OLD_BUNDLE = Path(__file__).resolve().parent / "data" / "files" / "bundle-00e3390-x86-fp32"
# the reference checkpoint that bundle was exported from (shipped until the β 2 reference replaced it)
OLD_REFERENCE = OLD_BUNDLE.parent / "siftfunnel-cnn-fmnist-00e3390.safetensors"


def test_a_bundle_written_before_the_typed_manifest_still_verifies(tmp_path):
    """tests/data/files/bundle-00e3390-x86-fp32 is what export wrote at commit 00e3390 (before the typed
    documents): its manifest, profile and parity reference. Its edge and cloud ONNX files are exported here
    from the same checkpoint instead of being committed (7.5 MB). Their bytes are not stable across CPUs
    (torch's constant folding rounds differently), so their two hashes are re-recorded; what is tested is
    that the old manifest format reads and verifies, with parity re-run against the old reference outputs."""
    from sift_deploy.export import export_bundle
    from sift_deploy.fileio import sha256_file

    fresh = tmp_path / "fresh"
    export_bundle(OLD_REFERENCE, "x86", "fp32", output=fresh, parity_on_test_split=False)
    old = tmp_path / "old"
    shutil.copytree(OLD_BUNDLE, old)
    manifest = json.loads((old / MANIFEST).read_text())
    for name in ("edge.fp32.onnx", "cloud.onnx"):
        shutil.copyfile(fresh / name, old / name)
        manifest["files"][name].update(sha256=sha256_file(old / name), bytes=(old / name).stat().st_size)
    (old / MANIFEST).write_text(json.dumps(manifest, indent=2))
    assert "serving" not in manifest and "artifact" not in manifest["input"]  # the pre-change format
    result = invoke("verify", old)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("PASS")
