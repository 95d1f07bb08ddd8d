"""The real advise run (slow): every cut of the shipped reference SiftFunnel CNN and of its
unprotected twin, x86 int8, the fast budget, the full Fashion-MNIST splits. It checks the known
facts (the twin's cuts leak more than the funnel; the funnel's z is the smallest on the wire) and
the time bound (15 minutes on 2 cores for the reference), and prints both tables (README "Choosing
a cut").

The bound is checked on the process's CPU time (user + system, all threads): on 2 dedicated cores
the wall time cannot exceed it, and unlike wall time it does not grow when other jobs share the
machine (measured for the reference: 441 s of CPU, 957 s of wall time under a load average of ~8 on the
2 cores)."""

from __future__ import annotations

import resource
import time

import pytest

from sift_deploy.advise import AdviseOptions, run_advise
from sift_deploy.advise.render import markdown_table
from sift_deploy.checkpoint import REFERENCE_CHECKPOINT, REFERENCE_TWIN

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]
REFERENCE_BOUND_S = 15 * 60


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _advise(checkpoint, output):
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    report = run_advise(AdviseOptions(target="x86", checkpoint=checkpoint, output=output),
                        on_cut=lambda i, n, c: print(f"  cut {i}/{n} {c['name']}: {c['seconds']:.0f} s", flush=True))
    return report, {"wall": time.perf_counter() - started, "cpu": _cpu_seconds() - cpu_started}


@pytest.fixture(scope="module")
def reports(fashion_mnist_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("advise")
    reference, reference_s = _advise(REFERENCE_CHECKPOINT, folder / "reference")
    twin, twin_s = _advise(REFERENCE_TWIN, folder / "twin")
    for label, report, seconds in (("reference", reference, reference_s), ("twin", twin, twin_s)):
        print(f"\n{label}: {report['checkpoint']['arch']}, wall {seconds['wall']:.0f} s, CPU {seconds['cpu']:.0f} s, "
              f"recommended "
              f"{report['recommendation']['cut']} ({report['recommendation']['reason']})\n{markdown_table(report)}")
    return {"reference": (reference, reference_s), "twin": (twin, twin_s)}


def _funnel(report: dict) -> dict:
    return next(c for c in report["cuts"] if c["default"])


def test_the_reference_takes_at_most_15_minutes(reports):
    assert reports["reference"][1]["cpu"] < REFERENCE_BOUND_S


def test_the_twin_leaks_more_than_the_funnel(reports):
    """Every twin cut has a higher dCor than the funnel; by decoder SSIM (intervals apart) every twin cut up
    to its own split, the funnel's depth, leaks more. Deeper twin cuts are not asserted: measured, the
    twin's block4 (512x2x2, two pools further) scored SSIM 0.642 [0.636, 0.647] against the funnel's 0.675
    [0.671, 0.680] (and the reference's own block4 0.579): depth alone also hides the image."""
    funnel = _funnel(reports["reference"][0])
    assert funnel["name"] == "cbam"
    twin_cuts = reports["twin"][0]["cuts"]
    for cut in twin_cuts:
        assert cut["leakage"]["dcor"] > funnel["leakage"]["dcor"], cut["name"]
    twin_split = next(i for i, c in enumerate(twin_cuts) if c["default"])
    for cut in twin_cuts[:twin_split + 1]:
        assert cut["leakage"]["decoder"]["ssim"]["low"] > funnel["leakage"]["decoder"]["ssim"]["high"], cut["name"]


def test_the_funnel_sends_the_fewest_bytes(reports):
    funnel = _funnel(reports["reference"][0])
    others = [c for r in ("reference", "twin") for c in reports[r][0]["cuts"] if c is not funnel]
    assert all(funnel["bytes"]["int8"] < c["bytes"]["int8"] for c in others)
    assert all(funnel["bytes"]["int8_compressed"] < c["bytes"]["int8_compressed"] for c in others)


def test_accuracy_holds_at_every_cut(reports):
    for report, _ in reports.values():
        for cut in report["cuts"]:
            assert cut["accuracy_int8_wire"]["mean"] > 0.85, cut["name"]
