"""The backend registry and the runner life cycle: one description per backend, runners from
loaders (path, bytes, bundle), the activate guard, one cosine, and a new runtime added by one
package plus one registration (export -> verify -> bench through it, nothing else changed)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sift_deploy.backends import _REGISTRY, backends, export_targets, get_backend, register
from sift_deploy.backends.base import Artifacts, BytesLoader, FileLoader
from sift_deploy.backends.onnx_common import export_onnx, float_parity_numbers, onnx_outputs
from sift_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner
from sift_deploy.backends.torch.runner import torch_outputs, torch_runner
from sift_deploy.cli import app
from sift_deploy.errors import SiftError
from sift_deploy.export import export_bundle
from sift_deploy.parity import cosine_per_image
from tests.backends.reference_evaluator import BACKEND as REFERENCE_EVALUATOR
from tests.conftest import make_tiny_model


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    model = make_tiny_model()
    path = tmp_path_factory.mktemp("registry") / "edge.onnx"
    export_onnx(model.edge, (1, 32, 32), path, rewrite=False)
    x = np.random.default_rng(0).standard_normal((4, 1, 32, 32)).astype(np.float32)
    return model, path, x


def test_every_backend_describes_itself():
    for name, backend in backends().items():
        assert backend.name == name and backend.label and backend.install_hint and backend.runtime_modules
        assert set(backend.precisions) <= {"fp32", "fp16", "int8"}
        for runtime in backend.stand_ins:  # a stand-in is another registered runtime
            assert runtime in backends()
    assert set(export_targets()) == {"onnxruntime", "litert", "tensorrt"}  # torch runs models, exports none
    with pytest.raises(SiftError, match="backend 'nope' is unknown; use one of onnxruntime"):
        get_backend("nope")


def test_an_all_zero_pair_scores_one_everywhere():
    zeros = np.zeros((2, 3, 4, 4), np.float32)
    other = np.ones((2, 3, 4, 4), np.float32)
    assert cosine_per_image(zeros, zeros).tolist() == [1.0, 1.0]
    assert cosine_per_image(zeros, other).tolist() == [0.0, 0.0]
    assert float_parity_numbers(zeros, zeros)["cosine_mean"] == 1.0  # the exporters' guards use the same cosine


def test_runner_guard(tiny_onnx):
    _, path, x = tiny_onnx
    runner = OnnxRuntimeRunner(FileLoader(path))
    with pytest.raises(SiftError, match="infer before activate"):
        runner.infer(x)
    with runner:
        with pytest.raises(SiftError, match="already active"):
            runner.activate()
        assert runner.infer(x).shape[0] == 4
        assert "onnxruntime" in runner.versions()
    assert not runner.is_active
    with pytest.raises(SiftError, match="infer before activate"):
        runner.infer(x)


def test_a_runner_from_bytes_equals_one_from_the_file(tiny_onnx):
    model, path, x = tiny_onnx
    from_file = onnx_outputs(path, x)
    np.testing.assert_array_equal(onnx_outputs(path.read_bytes(), x), from_file)
    with get_backend("onnxruntime").create_runner(Artifacts(files={"e.onnx": path.read_bytes()}), "e.onnx", {}) as r:
        np.testing.assert_array_equal(r.infer(x), from_file)
    assert cosine_per_image(torch_outputs(model.edge, x), from_file).min() > 0.9999
    with pytest.raises(SiftError, match="ONNX Runtime cannot load"):
        OnnxRuntimeRunner(BytesLoader(b"not onnx", "junk.onnx")).activate()


def test_the_torch_runner_has_the_same_life_cycle(tiny_onnx):
    model, _, x = tiny_onnx
    runner = torch_runner(model.edge, "edge")
    with pytest.raises(SiftError, match="infer before activate"):
        runner.infer(x)
    with runner:
        assert runner.infer(x).shape == torch_outputs(model.edge, x).shape
        assert runner.versions()["torch"]


def test_a_stand_in_must_be_declared(tiny_onnx):
    with pytest.raises(SiftError, match="cannot run under litert; use one of: onnxruntime"):
        get_backend("onnxruntime").create_runner(Artifacts(folder=tiny_onnx[1].parent), "edge.onnx", {}, 1, "litert")


def test_a_new_runtime_is_one_package_and_one_registration(tmp_path):
    register(REFERENCE_EVALUATOR)
    profile = tmp_path / "reference.toml"
    profile.write_text('schema_version = 1\nname = "numpy-box"\ndescription = "onnx ReferenceEvaluator"\n'
                       'backend = "onnx-reference"\ndefault_precision = "fp32"\nthreads = 1\n\n'
                       '[parity.fp32]\nmin_cosine = 0.9999\nmax_abs = 0.001\nmin_top1_agreement = 0.99\n\n'
                       '[budgets]\n')
    bundle = tmp_path / "bundle"
    outcome = export_bundle(None, str(profile), output=bundle, calib_count=64, parity_on_test_split=False)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert outcome.passed
    assert manifest["backend"] == "onnx-reference" and manifest["parity"]["passed"]
    assert manifest["parity"]["runtime"] == "onnx-reference"
    cli = CliRunner()
    result = cli.invoke(app, ["verify", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    report_file = tmp_path / "bench.json"
    result = cli.invoke(app, ["bench", str(bundle), "--iterations", "5", "--warmup", "1", "--json-file", str(report_file)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_file.read_text())
    assert report["runtime"]["name"] == "onnx-reference" and report["runtime"]["label"] == REFERENCE_EVALUATOR.label
    assert report["memory"]["peak_rss_mb"] > 0 and not report["memory"]["torch_imported"]


def test_an_export_writing_a_role_its_backend_does_not_declare_is_refused(tmp_path, monkeypatch):
    narrow = dataclasses.replace(REFERENCE_EVALUATOR, name="onnx-reference-narrow", artifact_roles=("onnx",))
    monkeypatch.setitem(_REGISTRY, narrow.name, narrow)
    profile = tmp_path / "narrow.toml"
    profile.write_text('schema_version = 1\nname = "numpy-box"\ndescription = "onnx ReferenceEvaluator"\n'
                       'backend = "onnx-reference-narrow"\ndefault_precision = "fp32"\nthreads = 1\n\n'
                       '[parity.fp32]\nmin_cosine = 0.9999\nmax_abs = 0.001\nmin_top1_agreement = 0.99\n\n'
                       '[budgets]\n')
    with pytest.raises(SiftError, match=r"wrote artifact roles \['edge'\]; it declares \['onnx'\]"):
        export_bundle(None, str(profile), output=tmp_path / "bundle", calib_count=64, parity_on_test_split=False)
    assert not (tmp_path / "bundle").exists()
