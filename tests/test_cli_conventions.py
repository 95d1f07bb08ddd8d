"""What every command shares, as the user sees it: targets, the workflow in --help, --json on stdout,
--runtime choices from the backends, PASS/FAIL last lines, stage lines in logs, one-line errors."""

from __future__ import annotations

import json
import shutil

from sift_deploy.backends import backends
from sift_deploy.documents import parse_document
from sift_deploy.documents.bench_report import BenchReport
from sift_deploy.profiles import available_targets, load_profile

from .conftest import assert_one_line_error, invoke

FEW = ("--iterations", "10", "--warmup", "1")


def test_targets_lists_every_profile_with_backend_precisions_threads():
    table = invoke("targets")
    assert table.exit_code == 0, table.output
    rows = json.loads(invoke("targets", "--json").stdout)
    assert [row["name"] for row in rows] == available_targets()
    for row in rows:
        profile = load_profile(row["name"])
        assert (row["backend"], row["precisions"], row["threads"]) == (profile.backend, list(profile.precisions), profile.threads)
        line = next(line for line in table.stdout.splitlines() if f" {row['name']} " in line)
        assert row["backend"] in line and f" {row['threads']} " in line and f"{profile.default_precision}*" in line
    assert {row["alias"] for row in rows} >= {"x86", "rpi", "jetson"}


def test_help_shows_the_workflow():
    result = invoke("--help")
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Workflow:" in text and "export --target rpi" in text and "check BUNDLE in CI" in text
    assert "targets" in result.stdout


def test_runtime_help_lists_the_stand_ins_the_backends_declare():
    stand_ins = {runtime for backend in backends().values() for runtime in backend.stand_ins}
    assert stand_ins
    for command in ("bench", "verify"):
        text = " ".join(invoke(command, "--help").stdout.replace("│", " ").split())
        for runtime in stand_ins:
            assert f"{runtime} (for tensorrt bundles)" in text, text


def test_arguments_are_named_alike():
    for command, name in (("export", "[CHECKPOINT]"), ("inspect", "[CHECKPOINT]"), ("verify", "BUNDLE"),
                          ("bench", "BUNDLE"), ("check", "BUNDLE"), ("serve", "BUNDLE"), ("infer", "BUNDLE"), ("infer", "IMAGES"),
                          ("advise", "[CHECKPOINT]"), ("convert", "OFFICIAL")):
        usage = invoke(command, "--help").stdout
        assert name in usage.split("Usage:", 1)[1].splitlines()[0], usage


def test_bench_json_prints_the_report_and_json_file_writes_it(reference_bundle, tmp_path):
    bundle = reference_bundle("x86", "fp32")
    result = invoke("bench", bundle, *FEW, "--json", "--json-file", tmp_path / "b.json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # nothing else on stdout
    assert printed == json.loads((tmp_path / "b.json").read_text())
    parse_document(BenchReport, printed, "bench --json")
    noise = printed["timing_noise"]
    assert noise["p99_over_p50"] > 0 and noise["cores_usable"] >= 1 and isinstance(noise["noisy"], bool)
    assert (noise["load_average_before"] is None) == (noise["load_average_after"] is None)
    for reason in noise["reasons"]:
        assert f"warning: noisy timing: {reason}" in " ".join(result.stderr.split())


def test_bench_of_a_folder_of_bundles_says_so(reference_bundle, tmp_path):
    folder = tmp_path / "bundles"
    folder.mkdir()
    shutil.copytree(reference_bundle("x86", "fp32"), folder / "x86-fp32")
    assert_one_line_error(invoke("bench", folder, *FEW), "is a folder of bundles (x86-fp32)", str(folder / "x86-fp32"))


def test_stand_in_is_said_once(reference_bundle, tmp_path):
    result = invoke("bench", reference_bundle("jetson"), *FEW, "--runtime", "onnxruntime", "--markdown", tmp_path / "b.md")
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stdout.splitlines() if "STAND-IN:" in line)
    assert note.lower().count("stand-in") == 1, note
    summary = next(line for line in (tmp_path / "b.md").read_text().splitlines() if "Stand-in:" in line)
    assert summary.lower().count("stand-in") == 1, summary


def test_verify_ends_with_pass_or_fail(reference_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(reference_bundle("x86", "fp32"), bundle)
    ok = invoke("verify", bundle)
    assert ok.exit_code == 0 and ok.stdout.strip().splitlines()[-1] == f"PASS bundle {bundle} is intact and parity holds"
    as_json = invoke("verify", bundle, "--json")
    assert json.loads(as_json.stdout)["passed"] and as_json.stderr.strip().splitlines()[-1].startswith("PASS")
    (bundle / "cloud.onnx").write_bytes(b"changed")
    tampered = invoke("verify", bundle)
    assert tampered.exit_code == 1
    assert tampered.stdout.strip().splitlines()[-1] == f"FAIL bundle {bundle}: files differ from the manifest"


def test_export_prints_stages_and_ends_with_pass(fashion_mnist_subset, tmp_path):
    """Under CliRunner stderr is not a terminal: stages come as plain lines, as in a CI log."""
    out = tmp_path / "bundle"
    result = invoke("export", "--target", "x86", "--precision", "fp32", "--data-dir", fashion_mnist_subset, "-o", out)
    assert result.exit_code == 0, result.output
    stages = result.stderr.splitlines()
    for expected in ("export: running the float model on 200 parity images 200/200",
                     "export: checking parity on 200 images (onnxruntime) 200/200"):
        assert expected in stages, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"PASS bundle {out} written, parity holds"
