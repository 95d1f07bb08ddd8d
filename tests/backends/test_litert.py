"""sift_deploy/backends/litert: litert-torch exports run in the real ai-edge-litert interpreter.

The edge is the shipped reference checkpoint's (a seeded random-init siftfunnel-cnn while that file
does not exist yet); calibration and parity images are the committed real Fashion-MNIST images
(first 512 calibrate, the other 256 are held out). Each artifact is converted once per module.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sift_deploy.backends.base import ExportRequest
from sift_deploy.data.calibration import CALIBRATION_COUNT
from sift_deploy.errors import SiftError
from sift_deploy.parity import cosine_per_image

LITERT_TORCH_MISSING = "litert-torch is not installed (pip install 'sift-deploy[rpi-export]')"
AI_EDGE_LITERT_MISSING = "ai-edge-litert is not installed (pip install 'sift-deploy[rpi]')"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.litert,
    # torch.export inside litert-torch warns about its own internals (LeafSpec, Enum constants)
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason=LITERT_TORCH_MISSING),
    pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason=AI_EDGE_LITERT_MISSING),
]


def _export(edge_case, out_dir: Path, precision: str, **options):
    from sift_deploy.backends.litert.export import export

    edge, calib, held_out, _, _ = edge_case
    out_dir.mkdir(parents=True, exist_ok=True)
    request = ExportRequest(edge=edge, input_shape=tuple(held_out.shape[1:]), precision=precision, calibration=calib,
                            calib_method="minmax", out_dir=out_dir, options=options)
    result = export(request)
    assert (out_dir / result.files["edge"]).is_file()
    return out_dir, result


@pytest.fixture(scope="module")
def fp32_export(edge_case, tmp_path_factory):
    return _export(edge_case, tmp_path_factory.mktemp("litert") / "fp32", "fp32", batch_variants=[4])


@pytest.fixture(scope="module")
def int8_export(edge_case, tmp_path_factory):
    """The default int8 export: the funnel's tail stays fp32 when z does not fit one int8 scale."""
    return _export(edge_case, tmp_path_factory.mktemp("litert") / "int8", "int8", batch_variants=[4])


PREVIOUS_REFERENCE = Path(__file__).resolve().parents[1] / "data" / "files" / "siftfunnel-cnn-fmnist-00e3390.safetensors"


@pytest.fixture(scope="module")
def previous_edge_case():
    """edge_case's tuple for the previous reference (β 0.4), whose full-integer graph LiteRT runs."""
    import torch

    from sift_deploy.checkpoint import load_checkpoint
    from sift_deploy.data.calibration import CALIBRATION_COUNT, DEFAULT_CALIBRATION, load_image_file
    from sift_deploy.data.preprocess import model_input

    ckpt = load_checkpoint(PREVIOUS_REFERENCE)
    model = ckpt.model.eval()
    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    inputs = model_input(images, model.spec.input_size, ckpt.mean, ckpt.std)
    calib, held_out = inputs[:CALIBRATION_COUNT], inputs[CALIBRATION_COUNT:]
    with torch.inference_mode():
        z_ref = model.edge(torch.from_numpy(held_out)).numpy()
    return model.edge, calib, held_out, z_ref, "previous reference checkpoint"


@pytest.fixture(scope="module")
def full_int8_nhwc_export(previous_edge_case, tmp_path_factory):
    """Full-integer int8 (int8 input and output tensors), channels-last."""
    return _export(previous_edge_case, tmp_path_factory.mktemp("litert") / "int8-full-nhwc", "int8", layout="NHWC",
                   float_tail=False)


def test_a_full_integer_graph_litert_aborts_on_is_refused_in_one_line(edge_case, tmp_path):
    """LiteRT 2.3's XNNPACK delegate aborts the process ("double free or corruption") in allocate_tensors on the
    shipped reference's full-integer graph; the export runs it in a child process first and refuses it."""
    from sift_deploy.errors import SiftError

    with pytest.raises(SiftError, match=r"LiteRT cannot run the full-integer int8 graph of this edge \(signal \d+"
                                        r".*float_tail = \"auto\" or true"):
        _export(edge_case, tmp_path / "int8-full", "int8", layout="NHWC", float_tail=False)


@pytest.fixture(scope="module")
def nhwc_export(edge_case, tmp_path_factory):
    return _export(edge_case, tmp_path_factory.mktemp("litert") / "fp32-nhwc", "fp32", layout="NHWC")


def _runner(exported, threads: int = 1):
    from sift_deploy.backends.base import Artifacts
    from sift_deploy.backends.litert.runner import create_runner

    out_dir, result = exported
    return create_runner(Artifacts(folder=out_dir), result.files["edge"], result.details, threads).activate()


def test_fp32_matches_torch(edge_case, fp32_export):
    _, _, held_out, z_ref, _ = edge_case
    z = _runner(fp32_export).infer(held_out)
    assert z.shape == z_ref.shape and z.dtype == np.float32
    assert np.abs(z - z_ref).max() < 1e-4


def test_int8_parity_on_held_out_real_images(edge_case, int8_export):
    _, _, held_out, z_ref, source = edge_case
    z = _runner(int8_export).infer(held_out)
    assert z.shape == z_ref.shape and z.dtype == np.float32
    cosine = cosine_per_image(z_ref, z)
    assert cosine.mean() >= 0.99, f"int8 cosine {cosine.mean():.5f} on {source}"
    assert np.abs(z - z_ref).max() <= 0.1 * np.abs(z_ref).max()


def test_full_integer_int8_has_int8_io_with_recorded_quant_params(previous_edge_case, full_int8_nhwc_export):
    from ai_edge_litert.interpreter import Interpreter

    out_dir, result = full_int8_nhwc_export
    interpreter = Interpreter(model_path=str(out_dir / result.files["edge"]))
    for detail, role in ((interpreter.get_input_details()[0], "input"), (interpreter.get_output_details()[0], "output")):
        assert detail["dtype"] == np.int8, role
        scale, zero_point = detail["quantization"]
        recorded = result.details[role]
        assert recorded["dtype"] == "int8"
        assert recorded["quantization"] == {"scale": pytest.approx(scale), "zero_point": zero_point}
        assert scale > 0
    quant = result.details["quantization"]
    assert quant["activation_observer"] == "MinMaxObserver" and quant["calibration_images"] == CALIBRATION_COUNT
    assert quant["shared_input_edges"] > 0 and quant["float_tail"]["used"] is False
    # the runner quantizes, transposes and dequantizes: float NCHW z comes out
    _, _, held_out, z_ref, _ = previous_edge_case
    z = _runner(full_int8_nhwc_export).infer(held_out)
    assert z.shape == z_ref.shape and z.dtype == np.float32
    # One int8 scale for all of z costs the trained edge's small channels (cosine ~0.90; see export.py).
    assert cosine_per_image(z_ref, z).mean() >= 0.85


def test_default_int8_keeps_the_tail_float_only_when_z_needs_it(int8_export):
    _, result = int8_export
    tail = result.details["quantization"]["float_tail"]
    assert tail["mode"] == "auto" and tail["modules"][-2:] == ["se_block2", "cbam"]
    assert tail["used"] == (tail["output_int8_cosine"] < 0.999)
    assert result.details["input"]["dtype"] == "int8"
    assert result.details["output"]["dtype"] == ("float32" if tail["used"] else "int8")
    if tail["used"]:
        assert tail["float_nodes"] > 0 and result.details["output"]["quantization"] is None


def test_the_fixed_rules_and_int8_ops_are_read_from_the_export(edge_case, int8_export, tmp_path):
    """What `export --precision auto` starts its rules phase from, and the guard on an int8_layers mix that
    litert-torch silently converts all to float (seen with the first module float)."""
    from sift_deploy.backends import get_backend

    edge, calib, held_out, _, _ = edge_case
    _, result = int8_export
    request = ExportRequest(edge=edge, input_shape=tuple(held_out.shape[1:]), precision="int8", calibration=calib,
                            calib_method="minmax", out_dir=tmp_path, options={})
    backend = get_backend("litert")
    groups = backend.quantizable_layers(request)
    tail = result.details["quantization"]["float_tail"]
    floating = set(tail["modules"]) if tail["used"] else set()
    assert backend.rule_int8_layers(request, result.details) == [g for g in groups if g not in floating]
    assert result.details["int8_compute_ops"] > 0
    with pytest.raises(SiftError, match="left every op in float although .* should be int8"):
        _export(edge_case, tmp_path / "first-float", "int8", int8_layers=[g for g in groups if g != groups[0]][:1])


def test_details_record_versions_layout_and_batch(fp32_export, int8_export):
    for _, result in (fp32_export, int8_export):
        details = result.details
        assert details["converter"] == "litert-torch"
        assert {"litert-torch", "ai-edge-litert", "torch"} <= set(details["versions"])
        assert details["layout"] == "NCHW"
        assert details["batch"]["exported"] == 1 and details["input"]["shape"][0] == 1
        assert details["file_bytes"] > 0 and details["ops"]["CONV_2D"] > 0
    assert fp32_export[1].details["input"]["dtype"] == "float32"


def test_nhwc_layout_gives_the_same_z(edge_case, fp32_export, nhwc_export):
    _, _, held_out, z_ref, _ = edge_case
    assert nhwc_export[1].details["layout"] == "NHWC"
    c, h, w = held_out.shape[1:]
    assert nhwc_export[1].details["input"]["shape"] == [1, h, w, c]
    z_nhwc = _runner(nhwc_export).infer(held_out[:32])
    z_nchw = _runner(fp32_export).infer(held_out[:32])
    assert z_nhwc.shape == z_ref[:32].shape
    np.testing.assert_allclose(z_nhwc, z_nchw, atol=1e-6)


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_batches_through_the_runner(edge_case, fp32_export, int8_export, which):
    _, _, held_out, _, _ = edge_case
    runner = _runner(fp32_export if which == "fp32" else int8_export, threads=2)
    one_by_one = np.concatenate([runner.infer(held_out[i:i + 1]) for i in range(7)])
    batched = runner.infer(held_out[:7])
    assert batched.shape == (7, *one_by_one.shape[1:])
    np.testing.assert_array_equal(batched, one_by_one)


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_batch_variant_is_a_batched_graph_with_the_same_z(edge_case, fp32_export, int8_export, which):
    """Batching is real: a batch of 4 (or 8) is one invocation (per 4 images) of a static batch-4 graph
    converted from the same module (int8: the same calibrated graph), and gives the batch-1 graph's z."""
    from sift_deploy.backends.litert.runner import LiteRTRunner

    _, _, held_out, _, _ = edge_case
    out_dir, result = fp32_export if which == "fp32" else int8_export
    assert result.details["batch"]["variants"] == {"4": f"edge.{which}.b4.tflite"}
    assert result.files["edge_b4"] == f"edge.{which}.b4.tflite" and (out_dir / result.files["edge_b4"]).is_file()
    runner = _runner((out_dir, result))
    assert isinstance(runner, LiteRTRunner) and set(runner.variants) == {4}
    assert runner.graph_batch(8) == 4 and runner.graph_batch(4) == 4 and runner.graph_batch(7) == 1
    calls = []
    original = runner._variant_calls[4]
    runner._variant_calls[4] = lambda q: calls.append(len(q)) or original(q)
    batched = runner.infer(held_out[:8])
    assert calls == [4, 4]
    one_by_one = np.concatenate([runner.infer(held_out[i:i + 1]) for i in range(8)])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5 if which == "fp32" else 1e-6)


def test_batch_variants_option_is_checked(edge_case, tmp_path):
    with pytest.raises(SiftError, match="batch_variants"):
        _export(edge_case, tmp_path / "bad", "fp32", batch_variants=["32"])


def test_runner_rejects_wrong_shapes(edge_case, fp32_export):
    _, _, held_out, _, _ = edge_case
    runner = _runner(fp32_export)
    with pytest.raises(SiftError, match="shape"):
        runner.infer(held_out[:2, :, :16, :16])
    with pytest.raises(SiftError, match=r"\(N, C, H, W\)"):
        runner.infer(held_out[0])


def test_export_rejects_unknown_precision_and_layout(edge_case, tmp_path):
    from sift_deploy.backends.litert.export import export

    edge, calib, held_out, _, _ = edge_case
    base = dict(edge=edge, input_shape=tuple(held_out.shape[1:]), calibration=calib, calib_method="minmax",
                out_dir=tmp_path)
    with pytest.raises(SiftError, match="fp32, fp16, int8"):
        export(ExportRequest(precision="int4", **base))
    with pytest.raises(SiftError, match="NCHW or NHWC"):
        export(ExportRequest(precision="fp32", options={"layout": "CHWN"}, **base))


def test_runner_runs_without_torch(edge_case, fp32_export, int8_export, tmp_path):
    """On the Pi only numpy and ai-edge-litert exist: torch must not be imported, even indirectly."""
    _, _, held_out, _, _ = edge_case
    cases = {}
    for name, (out_dir, result) in (("fp32", fp32_export), ("int8", int8_export)):
        expected = _runner((out_dir, result)).infer(held_out[:5])
        np.save(tmp_path / f"{name}-expected.npy", expected)
        cases[name] = {"dir": str(out_dir), "file": result.files["edge"], "details": result.details}
    np.save(tmp_path / "x.npy", held_out[:5])
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = textwrap.dedent(f"""
        import json, sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        from pathlib import Path
        import numpy as np
        from sift_deploy.backends.base import Artifacts
        from sift_deploy.backends.litert.runner import create_runner
        tmp = Path({str(tmp_path)!r})
        x = np.load(tmp / "x.npy")
        for name, case in json.loads((tmp / "cases.json").read_text()).items():
            runner = create_runner(Artifacts(folder=Path(case["dir"])), case["file"], case["details"], 1)
            with runner:
                z = runner.infer(x)
            np.testing.assert_array_equal(z, np.load(tmp / f"{{name}}-expected.npy"))
            print(name, runner.versions()["runtime"])
        assert not any(m == "litert_torch" or m.startswith(("litert_torch.", "torch.")) for m in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fp32 ai-edge-litert" in proc.stdout and "int8 ai-edge-litert" in proc.stdout


def test_runner_falls_back_to_tflite_runtime(edge_case, fp32_export, monkeypatch):
    """Where only tflite-runtime is importable, the runner uses its Interpreter (stood in for here by
    ai-edge-litert's class under the tflite_runtime name: the selection logic is what is tested)."""
    import types

    from ai_edge_litert.interpreter import Interpreter

    fake = types.ModuleType("tflite_runtime.interpreter")
    fake.Interpreter = Interpreter
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    _, _, held_out, z_ref, _ = edge_case
    runner = _runner(fp32_export)
    assert runner.runtime == "tflite-runtime" and runner.versions()["runtime"] == "tflite-runtime"
    assert np.abs(runner.infer(held_out[:4]) - z_ref[:4]).max() < 1e-4


def test_runner_without_any_runtime_says_what_to_install(fp32_export, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(SiftError, match=r"sift-deploy\[rpi\]"):
        _runner(fp32_export)
