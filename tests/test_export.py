"""sift_deploy/export.py and `sift-deploy export`: checkpoint + target -> complete, verifiable bundle.

Cost control (2 shared cores): the reference checkpoint is exported at int8 once per target for the
whole session (conftest `reference_bundle`, parity on the committed hold-out). The slow tier adds
x86 and rpi parity on the full Fashion-MNIST test split (the numbers the README gives) and the
backbone matrix (each backbone x target x {fp32, int8} with 16 calibration images and parity on the
first `BACKBONE_PARITY_IMAGES` committed hold-out images). Bad inputs fail before any heavy work, so
the CLI tests for them are cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sift_deploy import export as export_module
from sift_deploy.bundle import MANIFEST, SCHEMA_VERSION, read_manifest, verify_files
from sift_deploy.checkpoint import save_checkpoint
from sift_deploy.cloud import CLOUD_FILE
from sift_deploy.data.calibration import DEFAULT_CALIBRATION, MIN_CALIBRATION_IMAGES, load_image_file
from sift_deploy.errors import SiftError
from sift_deploy.export import PARITY_REFERENCE, export_bundle
from sift_deploy.fileio import sha256_file
from sift_deploy.models import ModelSpec, build_model
from sift_deploy.profiles import TARGETS_DIR, load_profile
from sift_deploy.verify import verify_bundle
from .conftest import assert_one_line_error, error_output, invoke

pytestmark = [
    # torch.export inside litert-torch warns about its own internals (LeafSpec, Enum constants)
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TARGETS = ("x86", "rpi", "jetson")
BACKBONES = ("siftfunnel-cnn", "siftfunnel-vgg16bn", "siftfunnel-resnet18", "ae-cnn")  # ae-cnn: the autoencoder baseline
TEST_SPLIT_TARGETS = ("x86", "rpi")  # reference parity on the 10,000 test images; jetson on the hold-out
BACKBONE_PARITY_IMAGES = 64
PARITY_FIGURES = ("images", "cosine_mean", "cosine_min", "max_abs", "feature_max", "top1_agreement", "accuracy_float",
                  "accuracy_deployed")
BACKBONE_METADATA = {"normalization": {"mean": 0.5, "std": 0.5}, "note": "untrained, torch.manual_seed(0)"}


def require_backend(target: str) -> None:
    """Skip with the missing piece named when this machine cannot export for `target`."""
    if target == "rpi":
        for module, package in (("litert_torch", "litert-torch"), ("ai_edge_litert", "ai-edge-litert")):
            if importlib.util.find_spec(module) is None:
                pytest.skip(f"{package} is not installed (pip install 'sift-deploy[rpi-export]')")
    elif importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is not installed (pip install 'sift-deploy[x86]')")


def tree(folder: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under `folder`, hidden ones included."""
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def siblings(path: Path) -> list[str]:
    """Temporary siblings atomic_dir could leave beside `path` (.NAME.*.tmp / .old)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


# ------------------------------------------------------------------ shared exports

@pytest.fixture(scope="module")
def reference_int8(reference_bundle):
    """target -> ExportOutcome of the shipped reference checkpoint at int8 (the session's shared bundle)."""
    def get(target: str):
        require_backend(target)
        bundle = reference_bundle(target, "int8")
        return export_module.ExportOutcome(bundle, read_manifest(bundle))

    return get


@pytest.fixture(scope="module")
def backbone_checkpoints(tmp_path_factory) -> dict[str, Path | None]:
    """arch -> checkpoint: the reference for siftfunnel-cnn, fresh seeded models (1x32x32, 10 classes) for the others."""
    root = tmp_path_factory.mktemp("backbones")
    out: dict[str, Path | None] = {"siftfunnel-cnn": None}
    for arch in BACKBONES[1:]:
        torch.manual_seed(0)
        model = build_model(ModelSpec(arch, 1, 10, 32)).eval()
        out[arch] = save_checkpoint(model, BACKBONE_METADATA, root / f"{arch}.safetensors")
    return out


@contextlib.contextmanager
def fewer_parity_images():
    """Parity on the first BACKBONE_PARITY_IMAGES images of what export would use (cost, not coverage)."""
    real = export_module._parity_images

    def trimmed(*args, **kwargs):
        images, labels, source = real(*args, **kwargs)
        return images[:BACKBONE_PARITY_IMAGES], labels[:BACKBONE_PARITY_IMAGES], f"{source} (first {BACKBONE_PARITY_IMAGES})"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(export_module, "_parity_images", trimmed)
        yield


def cheap_export(output: Path, checkpoint=None, target="x86", precision="fp32", **kwargs):
    return export_bundle(checkpoint, target, precision, output=output, calib_count=MIN_CALIBRATION_IMAGES,
                         parity_on_test_split=False, **kwargs)


# ------------------------------------------------------------------ what a complete bundle is

def assert_edge_file(folder: Path, manifest: dict, target: str, precision: str) -> None:
    edge = folder / manifest["edge_file"]
    details = manifest["export"]["details"]
    if target == "rpi":
        assert edge.suffix == ".tflite" and edge.name == f"edge.{precision}.tflite"
        assert edge.read_bytes()[4:8] == b"TFL3"  # the FlatBuffer file identifier of a TFLite model
        assert details["input"]["dtype"] == ("int8" if precision == "int8" else "float32")
        assert details["output"]["dtype"] in (("int8", "float32") if precision == "int8" else ("float32",))
        return
    import onnx

    onnx_file = folder / manifest["export"]["files"].get("onnx", manifest["edge_file"])  # jetson: what the engine is built from
    model = onnx.load(str(onnx_file))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    assert opset == manifest["profile"]["backend_options"]["opset"] == details["opset"]
    assert ("QuantizeLinear" in ops) == (precision == "int8")
    if target == "x86":
        assert edge.name == f"edge.{precision}.onnx"
        return
    from sift_deploy.backends.tensorrt.lint import lint
    from sift_deploy.backends.tensorrt.runner import ENGINE_FILE

    assert onnx_file.name == ("edge.int8.qdq.onnx" if precision == "int8" else "edge.onnx")
    assert edge.name in (onnx_file.name, ENGINE_FILE)  # the engine where TensorRT and a GPU were at hand
    if edge.name == ENGINE_FILE:
        assert edge.stat().st_size > 0 and details["engine"]
    assert manifest["backend"] == "tensorrt" and (folder / "build_engine.sh").is_file() and (folder / "edge.onnx").is_file()
    assert "trtexec" in details and details["trt_version"] == manifest["profile"]["backend_options"]["trt_version"]
    if precision == "int8":
        assert (folder / "edge.calib.cache").is_file()
        assert lint(model, details["trt_version"]) == []


def assert_complete_bundle(outcome, arch: str, target: str, precision: str) -> dict:
    folder = Path(outcome.bundle)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest == outcome.manifest
    assert manifest["schema_version"] == SCHEMA_VERSION
    profile = load_profile(target)
    assert manifest["target"] == profile.name and manifest["backend"] == profile.backend
    assert manifest["precision"] == precision and manifest["model"]["arch"] == arch
    assert manifest["model"]["in_channels"] == 1 and manifest["model"]["input_size"] == 32
    assert manifest["model"]["num_classes"] == 10
    # every listed file exists with its hash, and nothing else is in the folder
    files = manifest["files"]
    for name in (manifest["edge_file"], CLOUD_FILE, PARITY_REFERENCE, "profile.toml", *manifest["export"]["files"].values()):
        assert name in files, name
    for rel, info in files.items():
        path = folder / rel
        assert path.is_file(), rel
        assert sha256_file(path) == info["sha256"] and path.stat().st_size == info["bytes"], rel
    assert verify_files(folder, manifest) == []
    assert not siblings(folder)
    assert_edge_file(folder, manifest, target, precision)
    # the float cloud takes what the edge sends
    import onnx

    cloud = onnx.load(str(folder / CLOUD_FILE))
    onnx.checker.check_model(cloud)
    dims = [d.dim_value for d in cloud.graph.input[0].type.tensor_type.shape.dim][1:]
    assert [None, *dims] == manifest["features"]["shape"]
    assert manifest["features"]["wire_int8"]
    # calibration and provenance
    assert manifest["calibration"]["count"] >= MIN_CALIBRATION_IMAGES and manifest["calibration"]["method"] == "minmax"
    assert manifest["export"]["seed"] == 0 and manifest["source_checkpoint"]["sha256"]
    assert manifest["versions"]["numpy"] == np.__version__
    # the parity block: figures, thresholds, verdict
    parity = manifest["parity"]
    for key in PARITY_FIGURES:
        assert isinstance(parity[key], (int, float)) and math.isfinite(parity[key]), key
    assert parity["images"] > 0 and -1 <= parity["cosine_min"] <= parity["cosine_mean"] <= 1 + 1e-9
    assert 0 <= parity["top1_agreement"] <= 1 and 0 <= parity["wire_int8"]["top1_agreement"] <= 1
    assert parity["thresholds"] == profile.parity[precision].thresholds()
    assert isinstance(parity["passed"], bool) and parity["passed"] == (parity["failures"] == [])
    assert parity["source"] and parity["runtime"]
    with np.load(folder / PARITY_REFERENCE) as ref:
        assert len(ref["images"]) == min(parity["images"], export_module.PARITY_REFERENCE_COUNT)
        assert list(ref["z_ref"].shape[1:]) == manifest["features"]["shape"][1:]
    return manifest


# ------------------------------------------------------------------ the export matrix

@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("arch", BACKBONES)
def test_backbone_exports_a_complete_bundle(arch, target, precision, backbone_checkpoints, reference_int8, tmp_path):
    require_backend(target)
    reused = arch == "siftfunnel-cnn" and precision == "int8"
    if reused:
        outcome = reference_int8(target)  # the reference *is* the trained siftfunnel-cnn: reuse its export
    else:
        with fewer_parity_images():
            outcome = cheap_export(tmp_path / "bundle", backbone_checkpoints[arch], target, precision)
    manifest = assert_complete_bundle(outcome, arch, target, precision)
    parity = manifest["parity"]
    if precision == "fp32":  # a float export computes the same function, trained or not
        assert parity["cosine_mean"] > 0.99999, parity
    if arch == "siftfunnel-cnn" and not (reused and target in TEST_SPLIT_TARGETS):  # those: test_..._on_the_test_split
        assert parity["passed"], parity["failures"]  # the trained reference meets its profile's bounds


@pytest.mark.slow
@pytest.mark.parametrize("target", TEST_SPLIT_TARGETS)
def test_reference_int8_parity_on_the_test_split(target, fashion_mnist_dir, tmp_path):
    require_backend(target)
    parity = export_bundle(None, target, "int8", output=tmp_path / target, parity_images="all").manifest["parity"]
    assert parity["source"].startswith("test split of") and parity["images"] == 10000
    assert parity["top1_agreement"] >= 0.99, parity
    assert parity["cosine_mean"] >= 0.99 and parity["passed"], parity["failures"]
    assert abs(parity["accuracy_deployed"] - parity["accuracy_float"]) < 0.01


def test_reference_int8_jetson_parity_on_the_hold_out(reference_int8):
    parity = reference_int8("jetson").manifest["parity"]
    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    assert parity["source"].startswith("committed") and parity["images"] == len(images) - 512
    assert parity["runtime"].startswith("tensorrt")  # the engine on a Jetson, else the stand-in on the Q/DQ ONNX
    assert parity["passed"], parity["failures"]


@pytest.mark.parametrize("target", TARGETS)
def test_reference_bundles_verify(target, reference_int8):
    outcome = reference_int8(target)
    runtime = None
    if target == "jetson":
        from sift_deploy.backends.tensorrt.runner import tensorrt_available

        if not tensorrt_available()[0]:  # no Jetson here: files only, and it says how to re-run parity
            files_only = verify_bundle(outcome.bundle)
            assert files_only["passed"] and files_only["file_problems"] == [] and "parity_skipped" in files_only
            with pytest.raises(SiftError, match="--runtime onnxruntime"):
                verify_bundle(outcome.bundle, require_parity=True)
            runtime = "onnxruntime"
    report = verify_bundle(outcome.bundle, runtime=runtime)
    assert report["file_problems"] == [] and report["files_checked"] == len(outcome.manifest["files"])
    assert report["parity"]["images"] == export_module.PARITY_REFERENCE_COUNT
    assert report["passed"] == report["parity"]["passed"]
    assert report["parity"]["cosine_mean"] >= 0.99


# ------------------------------------------------------------------ --force

def test_existing_bundle_is_refused_without_force(reference_int8, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    existing = tmp_path / "bundle"
    shutil.copytree(reference_int8("x86").bundle, existing)
    before = tree(tmp_path)
    result = invoke("export", "--target", "x86", "--precision", "fp32", "--output", existing)
    assert_one_line_error(result, f"{existing} already exists", "--force")
    assert tree(tmp_path) == before
    with pytest.raises(SiftError, match="already exists"):
        cheap_export(existing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SiftError, match="already exists"):
        cheap_export(empty)
    assert tree(tmp_path) == {**before, "empty": None}


def test_force_replaces_the_whole_bundle(reference_int8, tmp_path):
    existing = tmp_path / "bundle"
    shutil.copytree(reference_int8("x86").bundle, existing)
    (existing / "stale.txt").write_text("left from an earlier export")
    outcome = cheap_export(existing, force=True)
    manifest = assert_complete_bundle(outcome, "siftfunnel-cnn", "x86", "fp32")
    assert not (existing / "edge.int8.onnx").exists() and not (existing / "stale.txt").exists()  # no mix of old and new
    assert set(manifest["files"]) == {p.relative_to(existing).as_posix() for p in existing.rglob("*") if p.is_file()} - {MANIFEST}
    assert sorted(os.listdir(tmp_path)) == ["bundle"]


# ------------------------------------------------------------------ atomic writes

class Injected(RuntimeError):
    pass


def _fail_in_write_manifest(monkeypatch):
    def broken(folder, manifest):
        (Path(folder) / MANIFEST).write_text('{"schema_version": 1, "half": ')  # a half-written manifest
        raise Injected("disk full while writing the manifest")

    monkeypatch.setattr(export_module, "write_manifest", broken)
    return Injected


def _interrupt_after_the_edge(monkeypatch):
    real = export_module.export_edge

    def interrupted(backend, request):
        real(backend, request)  # the edge file is in the temporary folder now
        raise KeyboardInterrupt

    monkeypatch.setattr(export_module, "export_edge", interrupted)
    return KeyboardInterrupt


@pytest.mark.parametrize("inject", [_fail_in_write_manifest, _interrupt_after_the_edge], ids=["write_manifest", "ctrl-c"])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_a_failure_midway_leaves_nothing_behind(inject, existing, reference_int8, tmp_path, monkeypatch):
    out = tmp_path / "bundle"
    if existing:
        shutil.copytree(reference_int8("x86").bundle, out)
    before = tree(tmp_path)
    error = inject(monkeypatch)
    with pytest.raises(error):
        cheap_export(out, force=existing)
    assert tree(tmp_path) == before  # no new bundle, no temporary sibling, an old bundle byte-identical
    assert not siblings(out)
    if existing:
        assert verify_files(out, json.loads((out / MANIFEST).read_text())) == []
    else:
        assert not out.exists()


def test_a_failure_in_the_final_rename_restores_the_old_bundle(reference_int8, tmp_path, monkeypatch):
    from sift_deploy import fileio

    out = tmp_path / "bundle"
    shutil.copytree(reference_int8("x86").bundle, out)
    before = tree(tmp_path)
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == out and Path(src).name.endswith(".tmp"):  # the new folder cannot move into place
            raise OSError("injected: rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)
    with pytest.raises(OSError, match="injected"):
        cheap_export(out, force=True)
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ bad inputs: one line, exit 2, nothing written


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A clean working folder (so a default `bundles/...` output would land here too)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def export_fails(workdir: Path, *args, fragments=()):
    """Run `sift-deploy export ARGS -o workdir/out` and assert a one-line exit-2 error that wrote nothing."""
    before = tree(workdir)
    result = invoke("export", *args, "--output", workdir / "out")
    assert_one_line_error(result, *fragments)
    assert tree(workdir) == before
    assert not (workdir / "out").exists() and not (workdir / "bundles").exists()
    return result


def _profile(workdir: Path, old: str, new: str, name: str = "device.toml") -> Path:
    text = (TARGETS_DIR / "x86-64.toml").read_text()
    assert old in text
    path = workdir / name
    path.write_text(text.replace(old, new, 1))
    return path


def _calib(workdir: Path, images: np.ndarray, name: str = "calib.npz") -> Path:
    path = workdir / name
    np.savez(path, images=images)
    return path


def _real_images(count: int) -> np.ndarray:
    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    return images[:count]


def test_unknown_target(workdir):
    export_fails(workdir, "--target", "toaster", fragments=("unknown target 'toaster'", "x86", "rpi", "jetson"))
    result = invoke("export", "--target", "toaster")  # without --output: nothing under bundles/ either
    assert_one_line_error(result, "unknown target")
    assert list(workdir.iterdir()) == []


def test_profile_missing_a_field(workdir):
    path = _profile(workdir, 'default_precision = "int8"\n', "")
    export_fails(workdir, "--target", path, fragments=(str(path), "lacks the field 'default_precision'"))


@pytest.mark.parametrize("old, new, fragment", [
    ("threads = 1 ", 'threads = "one" ', "'threads' must be int, got str"),
    ("opset = 17", 'opset = "seventeen"', "'opset' must be int, got str"),
    ("min_top1_agreement = 0.99\n", "min_top1_agreement = true\n", "'min_top1_agreement' must be float, got bool"),
], ids=["threads", "backend-option", "parity-bound"])
def test_profile_with_a_wrong_type(workdir, old, new, fragment):
    export_fails(workdir, "--target", _profile(workdir, old, new), fragments=(fragment,))


def test_profile_with_an_unknown_field(workdir):
    path = _profile(workdir, "threads = 1 ", "thread = 1 ")  # a typo: 'thread' is unknown and 'threads' missing
    export_fails(workdir, "--target", path, fragments=("unknown field(s) thread",))


def test_profile_error_naming_a_table_keeps_the_table_name(workdir):
    path = _profile(workdir, "[parity.int8]\n", "[parity.int8]\nmin_psnr = 30.0\n")
    export_fails(workdir, "--target", path, fragments=("[parity.int8] has unknown field(s) min_psnr",))


def test_profile_file_that_does_not_exist(workdir):
    export_fails(workdir, "--target", workdir / "absent.toml", fragments=("does not exist",))


def test_precision_the_target_does_not_support(workdir):
    export_fails(workdir, "--target", "rpi", "--precision", "fp16", fragments=("rpi4", "not fp16"))
    export_fails(workdir, "--precision", "int4", fragments=("not int4",))


@pytest.mark.parametrize("shape", [(20, 3, 32, 32), (20, 32, 32, 1), (20, 1024), (20, 1, 32, 48), (20, 1, 50, 50)],
                         ids=["rgb", "nhwc", "flat", "not-square", "too-large"])
def test_calibration_of_the_wrong_shape(workdir, shape):
    path = _calib(workdir, np.zeros(shape, np.uint8))
    export_fails(workdir, "--calib", path, fragments=("calibration images", str(path)))


@pytest.mark.parametrize("dtype", ["int32", "int64", "bool", "complex64"])
def test_calibration_of_the_wrong_dtype(workdir, dtype):
    path = _calib(workdir, _real_images(32).astype(dtype))
    export_fails(workdir, "--calib", path, fragments=(dtype, "use uint8 or float32 in [0, 1]"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 2.0, -0.5], ids=["nan", "inf", "above-1", "negative"])
def test_float_calibration_with_bad_values(workdir, bad):
    images = _real_images(32).astype(np.float32) / 255
    images[5, 0, 3, 3] = bad
    fragment = "NaN or infinite" if not np.isfinite(bad) else "must lie in [0, 1]"
    export_fails(workdir, "--calib", _calib(workdir, images), fragments=(fragment,))


def test_too_few_calibration_images(workdir):
    path = _calib(workdir, _real_images(MIN_CALIBRATION_IMAGES - 1))
    export_fails(workdir, "--calib", path, fragments=(f"holds {MIN_CALIBRATION_IMAGES - 1} calibration images",
                                                      f"at least {MIN_CALIBRATION_IMAGES}"))
    export_fails(workdir, "--calib-count", "8", fragments=(f"at least {MIN_CALIBRATION_IMAGES}",))


@pytest.mark.parametrize("content", [b"", b"not numpy at all", "truncated", "no-images-key"])
def test_unreadable_calibration_file(workdir, content):
    path = workdir / "calib.npz"
    if content == "truncated":
        path.write_bytes(DEFAULT_CALIBRATION.read_bytes()[:20000])
    elif content == "no-images-key":
        np.savez(path, pictures=_real_images(32))
    else:
        path.write_bytes(content)
    export_fails(workdir, "--calib", path, fragments=(str(path),))


def test_missing_calibration_file(workdir):
    export_fails(workdir, "--calib", workdir / "absent.npz", fragments=("does not exist",))


def test_missing_checkpoint(workdir):
    export_fails(workdir, workdir / "absent.safetensors", fragments=("checkpoint", "does not exist"))


def test_output_path_that_is_a_file(workdir):
    a_file = workdir / "out"
    a_file.write_text("a file, not a bundle")
    before = tree(workdir)
    for extra in ([], ["--force"]):
        assert_one_line_error(invoke("export", "--output", a_file, *extra), "is a file")
        assert tree(workdir) == before
    inside = a_file / "bundle"  # a folder inside a file
    assert_one_line_error(invoke("export", "--output", inside), "is a file")
    assert tree(workdir) == before


def test_console_script_one_line_error(tmp_path):
    """Through the real entry point, as a user runs it."""
    proc = subprocess.run([sys.executable, "-m", "sift_deploy", "export", "--target", "toaster", "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = error_output(proc.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: unknown target 'toaster'"), proc.stderr
    assert proc.stdout == "" and list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the CLI's happy path

def test_cli_export_json_then_force(fashion_mnist_subset, tmp_path, monkeypatch):
    """`export --data-dir`: calibration from its train split, parity on its test split; --json; --force replaces."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "b"
    args = ["export", "--target", "x86", "--precision", "fp32", "--data-dir", fashion_mnist_subset, "--calib-count", "32",
            "--output", out, "--json"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest == json.loads((out / MANIFEST).read_text())
    assert manifest["parity"]["images"] == 200 and manifest["parity"]["source"].startswith("test split of")
    assert manifest["calibration"]["count"] == 32 and "train split" in manifest["calibration"]["source"]
    first = tree(out)
    assert_one_line_error(invoke(*args), "already exists")
    assert tree(out) == first
    result = invoke(*args, "--force", "--seed", "1")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["calibration"]["seed"] == 1 and again["created"] >= manifest["created"]
    assert verify_files(out, again) == [] and sorted(os.listdir(tmp_path)) == ["b"]


# ------------------------------------------------------------------ the artifact's own I/O in the manifest

@pytest.fixture(scope="module")
def small_export(reference_bundle):
    """(target, precision) -> (bundle, manifest) of the reference: the session's shared bundles."""
    def get(target: str, precision: str):
        require_backend(target)
        bundle = reference_bundle(target, precision)
        return bundle, read_manifest(bundle)

    return get


def test_rpi_int8_manifest_says_the_tflite_takes_int8(small_export):
    from ai_edge_litert.interpreter import Interpreter

    bundle, manifest = small_export("rpi", "int8")
    artifact = manifest["input"]["artifact"]
    assert manifest["input"]["dtype"] == "float32"  # what the runner takes stays the contract
    # the input is quantized over the normalised range of uint8 pixels, [(0 - mean) / std, (1 - mean) / std]
    mean, std = (manifest["source_checkpoint"]["metadata"]["normalization"][k][0] for k in ("mean", "std"))
    lo, hi = -mean / std, (1 - mean) / std
    assert artifact["dtype"] == "int8"
    assert artifact["scale"] == pytest.approx((hi - lo) / 255, rel=1e-4)
    assert abs(artifact["zero_point"] - (-128 - lo / artifact["scale"])) <= 0.5 + 1e-6
    file_input = Interpreter(model_path=str(bundle / manifest["edge_file"])).get_input_details()[0]
    assert np.dtype(file_input["dtype"]).name == "int8"
    assert file_input["quantization"] == (artifact["scale"], artifact["zero_point"])
    assert artifact["shape"] == [int(d) for d in file_input["shape"]]
    assert manifest["features"]["artifact"]["dtype"] == manifest["export"]["details"]["output"]["dtype"]


def test_x86_manifest_says_the_onnx_takes_and_returns_float32(small_export):
    import onnx

    bundle, manifest = small_export("x86", "fp32")
    graph = onnx.load(str(bundle / manifest["edge_file"])).graph
    for spec, value in ((manifest["input"]["artifact"], graph.input[0]), (manifest["features"]["artifact"], graph.output[0])):
        assert spec["dtype"] == "float32" and "scale" not in spec and "zero_point" not in spec
        assert spec["name"] == value.name and spec["shape"][0] is None  # the dynamic batch axis
    assert manifest["input"]["artifact"]["shape"][1:] == [1, 32, 32]
    assert manifest["features"]["artifact"]["shape"][1:] == manifest["features"]["shape"][1:]
