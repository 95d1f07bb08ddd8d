"""benchmarks/privacy_table.py without running its steps: the commands `--dry-run` prints, the refusal
of bad options, and the formatting of the table it collects. The collection test writes small made-up
report files, so it proves only how figures are picked and printed, never what the models measure
(the real figures come from running the script; see benchmarks/PRIVACY.md)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, loaded_script



@pytest.fixture(scope="module")
def table_script():
    with loaded_script("benchmarks/privacy_table.py") as module:
        yield module


def _commands(stdout: str) -> list[list[str]]:
    return [shlex.split(line) for line in stdout.splitlines() if line.startswith(sys.executable)]


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_dry_run_prints_every_step_and_writes_nothing(table_script, tmp_path, capsys):
    out = tmp_path / "table"
    code = table_script.main(["--dry-run", "--out", str(out), "--models", "nopeek,noise",
                              "--epochs", "fmnist=2,mnist=3", "--budget", "fast", "--threads", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not out.exists()
    commands = _commands(captured.out)
    sift = [c[3:] for c in commands if c[1:3] == ["-m", "sift_deploy"]]
    trains = [c for c in sift if c[0] == "train"]
    # per data set: the twin first (every check attacks it), then the models in the order given; noise trains nothing
    assert [(_option(c, "--arch"), _option(c, "--defense"), _option(c, "--epochs")) for c in trains] == [
        ("plain-cnn", "none", "2"), ("plain-cnn", "nopeek", "2"), ("plain-cnn", "none", "3"), ("plain-cnn", "nopeek", "3")]
    fmnist_nopeek, mnist_nopeek = trains[1], trains[3]
    assert _option(fmnist_nopeek, "--beta") == "1" and "--alpha" not in fmnist_nopeek
    assert "--flip" in fmnist_nopeek and "--data-dir" not in fmnist_nopeek and "--resume" in fmnist_nopeek
    assert "--flip" not in mnist_nopeek and _option(mnist_nopeek, "--test-split") == "2000"
    assert _option(mnist_nopeek, "--data-dir").endswith("mnist.npz")
    assert _option(fmnist_nopeek, "-o") == str(out / "fmnist" / "nopeek" / "model.safetensors")
    exports = [c for c in sift if c[0] == "export"]
    assert len(exports) == 4 and all(_option(c, "--target") == "x86" and _option(c, "--precision") == "int8" for c in exports)
    noise_exports = [c for c in exports if "--feature-noise" in c]
    assert len(noise_exports) == 2 and all(_option(c, "--feature-noise") == "0.8" for c in noise_exports)
    for export, ds in zip(noise_exports, ("fmnist", "mnist")):  # the twin's checkpoint, its own bundle
        assert export[1] == str(out / ds / "plain" / "model.safetensors")
        assert _option(export, "-o") == str(out / ds / "noise" / "bundle-x86-int8")
    assert not any("--feature-noise" in c or "--feature-dropout" in c for c in exports if c not in noise_exports)
    checks = [c for c in sift if c[0] == "check"]
    assert [c[1] for c in checks] == [str(out / ds / m / "bundle-x86-int8") for ds in ("fmnist", "mnist")
                                      for m in ("nopeek", "noise")]
    for check, (ds, m) in zip(checks, [(ds, m) for ds in ("fmnist", "mnist") for m in ("nopeek", "noise")]):
        assert _option(check, "--twin") == str(out / ds / "plain" / "model.safetensors")
        assert _option(check, "--budget") == "fast"
        assert _option(check, "--report-dir") == str(out / ds / m / "check-fast")
    assert "--data-dir" in checks[2] and "--data-dir" not in checks[0]
    assert any(c[1].endswith("fetch_mnist.py") for c in commands)
    lines = captured.err.splitlines()
    assert "privacy_table: [2/6] fmnist/nopeek: training (plain-cnn, --defense nopeek, 2 epochs)" in lines
    assert "privacy_table: [3/6] fmnist/noise: exports the plain checkpoint plain/model.safetensors" in lines


@pytest.mark.parametrize("args, fragment", [
    (["--models", "plain,dp"], "unknown model dp"),
    (["--datasets", "cifar10"], "unknown data set cifar10"),
    (["--epochs", "ten"], "neither a number nor NAME=EPOCHS"),
    (["--datasets", "fmnist", "--epochs", "mnist=3"], "not in --datasets"),
])
def test_bad_options_stop_with_one_line(table_script, tmp_path, capsys, args, fragment):
    assert table_script.main(["--dry-run", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def _stat(mean: float, low: float, high: float) -> dict:
    return {"mean": mean, "low": low, "high": high, "per_seed": [mean - 0.001, mean + 0.001]}


def test_collected_table_picks_and_formats_each_figure(table_script, tmp_path):
    """Made-up files in the layout the steps write: how each figure is found and printed."""
    out = tmp_path
    nopeek = table_script.paths_for(out, "fmnist", "nopeek", "full")
    _write(nopeek.metrics, {"test_accuracy": 0.91234, "test_images": 10000, "steps": 3910,
                            "training": {"epochs": 10.0, "weights": {"beta": 1.0}}})
    _write(nopeek.inspect, {"model": {"transmitted_bytes": {"int8": 8192}, "transmitted_shape": [128, 8, 8],
                                      "edge": {"params": 76032, "macs": 19464192}}})
    _write(nopeek.manifest, {"features": {"shape": [None, 128, 8, 8]}, "model": {"edge_macs": 19464192},
                             "parity": {"passed": True}})
    _write(nopeek.check_json, {
        "passed": False, "budget": {"name": "full"}, "seconds": 12.0,
        "accuracy": {"float": 0.9123, "deployed": 0.9101},
        "attack": {"deployed": {"ssim": _stat(0.61234, 0.6011, 0.6222), "psnr": _stat(18.456, 18.31, 18.6),
                                "mse": _stat(0.012341, 0.0120, 0.0126)},
                   "twin": {"ssim": {"mean": 0.87}}, "baselines": {"label_only_ssim": 0.4481}},
        "whitebox": {"float": {"ssim": 0.2}, "fake_quantised": {"ssim": 0.1234}},
        "information": {"deployed": {"mi_nats": 4.5678, "dcor": 0.81234}, "twin": {"mi_nats": 6.5}},
        "bounds": [{"name": "accuracy drop", "passed": True}, {"name": "SSIM increase", "passed": False}],
        "data": {"budget_cuts": ["MINE trains on 3000 pairs", "the test split has 2000 images"]},
    })
    nopeek.grid.write_bytes(b"png")
    plain = table_script.paths_for(out, "fmnist", "plain", "full")
    _write(plain.metrics, {"test_accuracy": 0.93, "training": {"epochs": 10.0}})
    _write(plain.check_json, {"passed": True, "budget": {"name": "full"},
                              "data": {"budget_cuts": ["MINE trains on 3000 pairs"]}})
    noise = table_script.paths_for(out, "fmnist", "noise", "full")  # the twin's checkpoint, z perturbed
    _write(noise.check_json, {"passed": True, "budget": {"name": "full"}, "accuracy": {"float": 0.2735, "deployed": 0.2745},
                              "data": {"budget_cuts": ["MINE trains on 3000 pairs"]}})
    ae = table_script.paths_for(out, "fmnist", "ae", "full")
    _write(ae.metrics, {"test_accuracy": 0.9, "training": {"epochs": 10.0}})  # trained, not exported or checked yet
    models = [table_script.MODELS[k] for k in ("nopeek", "ae", "dropout", "noise", "plain")]
    table = table_script.collect(out, [table_script.DATASETS["fmnist"]], models, {"fmnist": 10.0}, "full",
                                 generated="2026-01-01T00:00:00+00:00")
    rows = {row["model"]: row for row in table["datasets"][0]["rows"]}
    assert rows["nopeek"]["status"] == "check fails" and rows["nopeek"]["broken_bounds"] == ["SSIM increase"]
    assert rows["nopeek"]["bytes_per_image_int8"] == 8192 and rows["nopeek"]["edge_macs"] == 19464192
    assert rows["nopeek"]["decoder_ssim"]["per_seed"] == [0.6113, 0.6133]
    assert rows["ae"]["status"] == "trained" and rows["plain"]["status"] == "check passes"
    assert rows["dropout"]["status"] == "trained"  # it reads the twin's metrics, and has no check of its own yet
    assert rows["dropout"]["perturbation"] == {"drop_rate": 0.8} and "device" in rows["dropout"]["note"]

    markdown = table_script.markdown_table(table)
    cells = {line.split(" | ")[0].lstrip("| "): [c.strip() for c in line.strip("|").split("|")]
             for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| model")}
    assert cells["NoPeek β 1"][1:] == ["91.23 %", "91.01 %", "0.612 [0.601, 0.622]", "0.01234", "18.46 [18.31, 18.60]", "0.123",
                                       "4.57", "0.812", "8,192", "19.5 M", "fails: SSIM increase",
                                       "[grid](fmnist/nopeek/check-full/reconstructions.png)"]
    ae_cells = cells["autoencoder bottleneck (AE_Classifier_4)"]
    assert ae_cells[1] == "90.00 %" and ae_cells[3] == "" and ae_cells[-2] == "trained"
    assert cells["twin + dropout on z (rate 0.8)"][-2] == "trained"
    assert cells["twin + dropout on z (rate 0.8)"][1] == "93.00 %"  # no check yet: the twin's training figure
    # checked: the float model with the same perturbation of z, not the twin's training figure
    assert cells["twin + Gaussian noise on z (std 0.8)"][1:3] == ["27.35 %", "27.45 %"]
    # a budget cut every check shares is said once; one row's own cut is said for that row
    assert markdown.count("MINE trains on 3000 pairs") == 1 and "- every check: MINE trains on 3000 pairs" in markdown
    assert "- NoPeek β 1: the test split has 2000 images" in markdown
    assert "label-only baseline SSIM (the class-mean image of the true label): 0.448" in markdown
    assert "## Fashion-MNIST" in markdown and "10 epochs for every model" in markdown

    json_path, md_path = table_script.write_table(out, table)
    assert json.loads(json_path.read_text()) == table and md_path.read_text() == markdown


def test_a_stamped_row_is_skipped_only_while_its_inputs_are_unchanged(table_script, tmp_path):
    """The bundles are not committed, so a fresh clone knows a row is checked from its stamp alone,
    and the table reads the bundle's facts from it."""
    model = table_script.MODELS["nopeek"]
    p = table_script.paths_for(tmp_path, "mnist", "nopeek", "full")
    twin = table_script.paths_for(tmp_path, "mnist", "plain", "full").checkpoint
    for path, data in ((p.checkpoint, b"nopeek weights"), (twin, b"twin weights")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _write(p.manifest, {"features": {"shape": [None, 128, 8, 8]}, "model": {"edge_macs": 19464192},
                        "parity": {"passed": True}, "files": {"edge.int8.onnx": "not read"}})
    _write(p.check_json, {"passed": True, "budget": {"name": "full"}})
    _write(p.metrics, {"test_accuracy": 0.98, "training": {"epochs": 40.0}})
    assert not table_script.checked_already(model, p, "full", twin)
    table_script.write_stamp(model, p, "full", twin)
    assert table_script.checked_already(model, p, "full", twin)
    assert not table_script.checked_already(model, p, "fast", twin)
    assert not table_script.checked_already(table_script.MODELS["noise"], p, "full", twin)  # other export options

    for path in sorted(p.bundle.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    p.bundle.rmdir()
    table = table_script.collect(tmp_path, [table_script.DATASETS["mnist"]], [model], {"mnist": 40.0}, "full")
    row = table["datasets"][0]["rows"][0]
    assert row["bytes_per_image_int8"] == 8192 and row["edge_macs"] == 19464192 and row["parity_passed"] is True

    p.checkpoint.write_bytes(b"retrained weights")
    assert not table_script.checked_already(model, p, "full", twin)
    twin.write_bytes(b"another twin")
    p.checkpoint.write_bytes(b"nopeek weights")
    assert not table_script.checked_already(model, p, "full", twin)
