"""sift_deploy/documents/: the typed manifest, profile and bounds, and their committed JSON Schemas."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sift_deploy.bounds import DEFAULT_BOUNDS
from sift_deploy.bundle import MANIFEST, read_manifest
from sift_deploy.documents import DOCUMENTS, DocumentError, parse_document
from sift_deploy.documents.bounds import BoundsDocument
from sift_deploy.documents.manifest import Manifest
from sift_deploy.documents.profile import ProfileDocument
from sift_deploy.documents.schemas import SCHEMAS_DIR, load_model, schema_path, schema_text, stale_schemas, write_schemas
from sift_deploy.profiles import TARGETS_DIR

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.onnx legacy exporter
REPO = Path(__file__).resolve().parents[2]
SHIPPED_PROFILES = sorted(TARGETS_DIR.glob("*.toml"))


def _model(name: str):
    return load_model(name)  # every registered document has a model: one that does not import is a failure


# ------------------------------------------------------------------ committed schemas

@pytest.mark.parametrize("name", DOCUMENTS)
def test_committed_schema_matches_the_model(name):
    model = _model(name)
    path = schema_path(name)
    assert path.is_file(), f"{path} is not committed; run python -m sift_deploy.documents.schemas"
    assert path.read_text() == schema_text(model), f"{path} is stale; run python -m sift_deploy.documents.schemas"


def test_schema_files_are_sorted_indented_and_end_in_a_newline():
    text = schema_text(ProfileDocument)
    assert text.endswith("}\n") and text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_check_names_a_stale_schema_and_writing_fixes_it(tmp_path):
    written = write_schemas(tmp_path, note=lambda _: None)
    assert schema_path("profile", tmp_path) in written and stale_schemas(tmp_path, note=lambda _: None) == []
    schema_path("bounds", tmp_path).write_text("{}\n")
    schema_path("manifest", tmp_path).unlink()
    assert set(stale_schemas(tmp_path, note=lambda _: None)) == {schema_path("bounds", tmp_path), schema_path("manifest", tmp_path)}


def test_check_command_passes_on_the_committed_schemas():
    result = subprocess.run([sys.executable, "-m", "sift_deploy.documents.schemas", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stale" not in result.stdout and SCHEMAS_DIR == REPO / "docs" / "schemas"


# ------------------------------------------------------------------ shipped documents validate

@pytest.mark.parametrize("path", SHIPPED_PROFILES, ids=lambda p: p.stem)
def test_shipped_profiles_validate(path):
    document = parse_document(ProfileDocument, tomllib.loads(path.read_text()), str(path))
    assert document.name == path.stem and document.default_precision in document.parity


def test_default_bounds_validate():
    document = parse_document(BoundsDocument, tomllib.loads(DEFAULT_BOUNDS.read_text()), str(DEFAULT_BOUNDS))
    assert document.accuracy.max_drop_points == 1.0 and document.leakage.max_ssim is None


@pytest.fixture(scope="module")
def exported_manifest(tmp_path_factory) -> dict:
    """The manifest export writes for the shipped reference (x86 fp32, parity on the committed hold-out)."""
    from sift_deploy.export import export_bundle

    out = tmp_path_factory.mktemp("documents") / "x86-fp32"
    export_bundle(None, "x86", "fp32", output=out, calib_count=64, parity_on_test_split=False)
    return json.loads((out / MANIFEST).read_text())


def test_a_manifest_written_by_export_validates(exported_manifest):
    manifest = parse_document(Manifest, exported_manifest, "manifest")
    assert manifest.backend == "onnxruntime" and manifest.precision == "fp32"
    assert manifest.profile.source.endswith("x86-64.toml") and manifest.files[manifest.edge_file].bytes > 0
    assert manifest.parity.thresholds is not None and manifest.calibration.count == 64


def test_read_manifest_returns_the_file_as_written(exported_manifest, tmp_path):
    (tmp_path / MANIFEST).write_text(json.dumps(exported_manifest))
    assert read_manifest(tmp_path) == exported_manifest


# ------------------------------------------------------------------ one-line errors naming the field

def _profile() -> dict:
    return tomllib.loads((TARGETS_DIR / "x86-64.toml").read_text())


def _bounds() -> dict:
    return tomllib.loads(DEFAULT_BOUNDS.read_text())


def _error(model, doc: dict, edit) -> str:
    doc = copy.deepcopy(doc)
    edit(doc)
    with pytest.raises(DocumentError) as info:
        parse_document(model, doc, "the document")
    message = str(info.value)
    assert "\n" not in message and message.startswith("the document")
    return message


def _profile_cases():
    return [
        ("unknown key", lambda d: d["budgets"].update(energy_mj=3.0), "[budgets] has unknown field(s) energy_mj"),
        ("wrong type", lambda d: d.update(threads="four"), "'threads' must be int, got str 'four'"),
        ("bool is not int", lambda d: d["backend_options"].update(opset=True), "[backend_options]: 'opset' must be int"),
        ("missing", lambda d: d["parity"]["int8"].pop("min_cosine"), "[parity.int8] lacks the field 'min_cosine'"),
        ("no max-abs form", lambda d: d["parity"]["int8"].pop("max_abs_relative"),
         "set max_abs (absolute) or max_abs_relative"),
    ]


@pytest.mark.parametrize("case, edit, expected", _profile_cases(), ids=[c[0] for c in _profile_cases()])
def test_profile_errors(case, edit, expected):
    assert expected in _error(ProfileDocument, _profile(), edit)


def _bounds_cases():
    return [
        ("unknown key", lambda d: d["leakage"].update(max_ssim_increse=0.1), "[leakage] has unknown field(s) max_ssim_increse"),
        ("wrong type", lambda d: d["attack"].update(min_twin_ssim=True), "[attack]: 'min_twin_ssim' must be float, got bool"),
        ("missing", lambda d: d["accuracy"].pop("max_drop_points"), "[accuracy] lacks the field 'max_drop_points'"),
        ("wrong version", lambda d: d.update(schema_version=2), "schema_version 2 is not supported"),
    ]


@pytest.mark.parametrize("case, edit, expected", _bounds_cases(), ids=[c[0] for c in _bounds_cases()])
def test_bounds_errors(case, edit, expected):
    assert expected in _error(BoundsDocument, _bounds(), edit)


def test_bounds_accept_ints_as_floats():
    doc = _bounds()
    doc["accuracy"]["max_drop_points"] = 2
    value = parse_document(BoundsDocument, doc, "bounds").accuracy.max_drop_points
    assert value == 2.0 and isinstance(value, float)


def _manifest_cases():
    return [
        ("unknown key", lambda d: d["model"].update(colour="blue"), "[model] has unknown field(s) colour"),
        ("wrong type", lambda d: d["model"].update(input_size="32"), "[model]: 'input_size' must be int, got str '32'"),
        ("missing", lambda d: d["features"]["wire_int8"].pop("scales"), "[features.wire_int8] lacks the field 'scales'"),
        ("bad file record", lambda d: d["files"].update({"x.bin": {"sha256": 3, "bytes": 1}}), "[files.x.bin]: 'sha256' must be str"),
    ]


@pytest.mark.parametrize("case, edit, expected", _manifest_cases(), ids=[c[0] for c in _manifest_cases()])
def test_manifest_errors(exported_manifest, case, edit, expected):
    assert expected in _error(Manifest, exported_manifest, edit)


def test_read_manifest_names_the_field_and_says_to_re_export(exported_manifest, tmp_path):
    broken = copy.deepcopy(exported_manifest)
    del broken["profile"]["threads"]
    (tmp_path / MANIFEST).write_text(json.dumps(broken))
    with pytest.raises(DocumentError, match=r"lacks 'profile\.threads'; re-export the bundle$"):
        read_manifest(tmp_path)
