"""The real advise run (slow): the shipped reference SiftFunnel CNN at its default cut and the cut before
it, and every cut of its unprotected twin, x86 int8, the fast budget, the full Fashion-MNIST splits. It
checks the known facts (every twin cut leaks more than the funnel; the funnel's z is the smallest on the
wire) and prints both tables.

The full all-cuts tables in the README ("Choosing a cut") come from `sift-deploy advise` itself (the
reference took 331 s there on one thread); the time is a measurement, not a test assertion. The
reference's two cuts keep this test inside the CI budget."""

from __future__ import annotations

import pytest

from sift_deploy.advise import AdviseOptions, run_advise
from sift_deploy.advise.render import markdown_table
from sift_deploy.checkpoint import REFERENCE_CHECKPOINT, REFERENCE_TWIN

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::FutureWarning")]
CUTS = {"reference": ["triplet", "cbam"], "twin": ["block1", "block2", "block3", "block4"]}


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
    """Every twin cut, down to block4 two pools deeper than the funnel, has a higher dCor and a decoder SSIM
    whose interval lies above the funnel's. Measured: funnel 0.518 [0.514, 0.522], twin block4 0.639
    [0.634, 0.644]. (With the previous, leakier reference, β 0.4 and funnel SSIM 0.675, block4 did not.)"""
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
