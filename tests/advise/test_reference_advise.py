"""The real advise run (slow): the shipped reference SiftFunnel CNN and its unprotected twin, each at
its default cut and the cut before it (the twin's cuts up to the funnel's depth), x86 int8, the fast
budget, the full Fashion-MNIST splits. It checks the known facts (the twin's cuts leak more than the
funnel; the funnel's z is the smallest on the wire) and prints both tables.

The full all-cuts tables in the README ("Choosing a cut") come from `sift-deploy advise` itself (the
reference took 441 s of CPU there, 957 s of wall time under a load average of ~8 on the 2 cores); the
time is a measurement, not a test assertion. Two cuts each keep this test inside the CI budget."""

from __future__ import annotations

import pytest

from sift_deploy.advise import AdviseOptions, run_advise
from sift_deploy.advise.render import markdown_table
from sift_deploy.checkpoint import REFERENCE_CHECKPOINT, REFERENCE_TWIN

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]
CUTS = {"reference": ["triplet", "cbam"], "twin": ["block1", "block2"]}


def _advise(checkpoint, output, cuts):
    return run_advise(AdviseOptions(target="x86", checkpoint=checkpoint, output=output, cuts=cuts),
                      on_cut=lambda i, n, c: print(f"  cut {i}/{n} {c['name']}: {c['seconds']:.0f} s", flush=True))


@pytest.fixture(scope="module")
def reports(fashion_mnist_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("advise")
    reference = _advise(REFERENCE_CHECKPOINT, folder / "reference", CUTS["reference"])
    twin = _advise(REFERENCE_TWIN, folder / "twin", CUTS["twin"])
    for label, report in (("reference", reference), ("twin", twin)):
        print(f"\n{label}: {report['checkpoint']['arch']}, recommended "
              f"{report['recommendation']['cut']} ({report['recommendation']['reason']})\n{markdown_table(report)}")
    return {"reference": reference, "twin": twin}


def _funnel(report: dict) -> dict:
    return next(c for c in report["cuts"] if c["default"])


def test_the_twin_leaks_more_than_the_funnel(reports):
    """Every twin cut has a higher dCor than the funnel; by decoder SSIM (intervals apart) every twin cut up
    to its own split, the funnel's depth, leaks more. Deeper twin cuts are not asserted: measured, the
    twin's block4 (512x2x2, two pools further) scored SSIM 0.642 [0.636, 0.647] against the funnel's 0.675
    [0.671, 0.680] (and the reference's own block4 0.579): depth alone also hides the image."""
    funnel = _funnel(reports["reference"])
    assert funnel["name"] == "cbam"
    twin_cuts = reports["twin"]["cuts"]
    assert [c["name"] for c in twin_cuts] == CUTS["twin"]
    for cut in twin_cuts:
        assert cut["leakage"]["dcor"] > funnel["leakage"]["dcor"], cut["name"]
        assert cut["leakage"]["decoder"]["ssim"]["low"] > funnel["leakage"]["decoder"]["ssim"]["high"], cut["name"]


def test_the_funnel_sends_the_fewest_bytes(reports):
    funnel = _funnel(reports["reference"])
    others = [c for r in ("reference", "twin") for c in reports[r]["cuts"] if c is not funnel]
    assert all(funnel["bytes"]["int8"] < c["bytes"]["int8"] for c in others)
    assert all(funnel["bytes"]["int8_compressed"] < c["bytes"]["int8_compressed"] for c in others)


def test_accuracy_holds_at_every_cut(reports):
    for report in reports.values():
        for cut in report["cuts"]:
            assert cut["accuracy_int8_wire"]["mean"] > 0.85, cut["name"]
