"""The precision search on a real small model with a layer whose int8 raises leakage while accuracy
holds: `auto` keeps that layer float where an accuracy-only search does not.

How the case is built (real components throughout: a torch model exported and quantized by the
ONNX Runtime backend, run in ONNX Runtime, probed by the real inverse decoder): the edge emits
z = [task features, a(x) - b(x)]. The task half is a conv's global average (8 numbers per image:
enough for a linear cloud, little to rebuild the image from). `a` is a 1x1 Conv on the 4x4 patches
of the image, `b` the same linear map written as an Einsum, which no backend quantizes, so in
float the second half is zero: the decorrelation. `a`'s weights are 127 on the diagonal and
|w| < 0.45 elsewhere, so per-channel int8 (scale 1) rounds every off-diagonal weight to 0 and int8
`a` leaves -R.u in z: 16 random projections of each patch's 16 pixels, which the decoder inverts.
The cloud reads only the task half, so accuracy does not move.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sift_deploy.data.preprocess import fit_to_size, model_input, to_unit
from sift_deploy.documents.precision_search import PrecisionSearch
from sift_deploy.precision.evaluate import ExportSettings, Measurement, SearchData
from sift_deploy.precision.pareto import pareto_png
from sift_deploy.precision.probe import DecoderProbe, ProbeSettings
from sift_deploy.precision.run import run_search
from sift_deploy.precision.search import SearchBounds

TASK = 8
PATCH = 4


class CancellingEdge(nn.Module):
    def __init__(self):
        super().__init__()
        self.task = nn.Conv2d(1, TASK, 3, padding=1)
        self.leak = nn.Conv2d(PATCH * PATCH, PATCH * PATCH, 1, bias=False)
        generator = torch.Generator().manual_seed(0)
        weight = (torch.rand(PATCH * PATCH, PATCH * PATCH, generator=generator) - 0.5) * 0.9
        weight.fill_diagonal_(127.0)
        self.leak.weight.data = weight[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = nn.functional.pixel_unshuffle(x, PATCH)
        task = torch.relu(self.task(x)).mean((2, 3), keepdim=True).expand(-1, -1, *patches.shape[2:])
        copy = torch.einsum("oc,nchw->nohw", self.leak.weight[:, :, 0, 0], patches)
        return torch.cat([task, self.leak(patches) - copy], 1)


class TaskCloud(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(TASK, 10)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z[:, :TASK, 0, 0])


@pytest.fixture(scope="module")
def case(fashion_mnist):
    images, labels = fashion_mnist.train_images[:2400], fashion_mnist.train_labels[:2400]
    torch.manual_seed(0)
    edge, cloud = CancellingEdge().eval(), TaskCloud()
    inputs = torch.from_numpy(model_input(images, 32, 0.5, 0.5))
    optimizer = torch.optim.Adam([*edge.task.parameters(), *cloud.parameters()], lr=1e-2)
    for step in range(150):
        idx = torch.from_numpy(np.random.default_rng(step).choice(1600, 128, replace=False))
        loss = nn.functional.cross_entropy(cloud(edge(inputs[idx])), torch.from_numpy(labels[idx]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    cloud.eval()
    x = model_input(images, 32, 0.5, 0.5)
    unit = to_unit(fit_to_size(images, 32))
    data = SearchData(eval_inputs=x[1600:2400], eval_labels=labels[1600:2400], aux_inputs=x[:600],
                      probe_inputs=x[1600:1800])
    settings = ExportSettings("onnxruntime", (1, 32, 32), x[:128], "minmax", {"opset": 17})
    return edge, cloud, settings, data, unit[:600], unit[1600:1800]


def _search(case, max_leak: float):
    edge, cloud, settings, data, x_aux, x_probe = case
    probe = DecoderProbe(x_aux, x_probe, ProbeSettings(width=16, fit_epochs=2, tune_epochs=1))
    return run_search(edge, cloud, settings, data, probe, SearchBounds(3.0, max_leak, 3))


def test_auto_keeps_the_leaking_layer_float_where_accuracy_only_does_not(case, tmp_path):
    auto = _search(case, 0.03)
    accuracy_only = _search(case, math.inf)
    leak_layer = "/leak/Conv"
    assert set(auto.result.layers) == {"/task/Conv", leak_layer}

    all_int8 = auto.result.candidates[0]
    assert all_int8.step == "all int8"
    assert all_int8.accuracy_drop_points <= 3.0  # accuracy holds ...
    assert all_int8.leakage_increase_ssim > 0.05  # ... while int8 on the leak conv breaks the cancellation
    assert auto.result.sensitivities[leak_layer] > auto.result.sensitivities["/task/Conv"]

    assert auto.result.met and auto.result.int8_layers == ["/task/Conv"]
    assert auto.record["layers"] == {"/task/Conv": "int8", leak_layer: "fp32"}
    assert accuracy_only.result.met and leak_layer in accuracy_only.result.int8_layers

    PrecisionSearch.model_validate(auto.record)  # what the manifest will hold
    assert any(c["pareto"] for c in auto.record["candidates"])
    png = tmp_path / "pareto.png"
    pareto_png(auto.result.candidates, SearchBounds(3.0, 0.03, 3), png, auto.result.best)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_iteration_cap_names_the_bound_it_could_not_meet(case):
    edge, cloud, settings, data, x_aux, x_probe = case
    probe = DecoderProbe(x_aux, x_probe, ProbeSettings(width=16, fit_epochs=2, tune_epochs=1))
    # a negative leakage allowance cannot be met by any candidate: the search stops at the cap
    outcome = run_search(edge, cloud, settings, data, probe, SearchBounds(3.0, -1.0, 1))
    assert not outcome.result.met and outcome.result.iterations == 1
    assert any(b.startswith("leakage increase") for b in outcome.result.unmet)


# The decisions alone, on made-up measurements (the real-artifact cases are above): `search` only
# decides, `evaluate` measures, so a table of figures per layer set shows what it chooses.
LAYERS = ["a", "b", "c", "d", "e", "f"]
REFERENCE = Measurement((), 0.90, {"ssim": 0.40})


def _decide(drop_of, rule_layers, iterations=12):
    from sift_deploy.precision.search import search

    def evaluate(int8: frozenset) -> Measurement:
        return Measurement(tuple(sorted(int8)), REFERENCE.accuracy - drop_of(int8) / 100, {"ssim": 0.40})

    return search(LAYERS, evaluate, REFERENCE, SearchBounds(1.0, 0.03, iterations), rule_layers=rule_layers)


def test_a_stalled_revert_search_continues_from_the_fixed_rules_and_adds_layers_back():
    # a cliff: more than three int8 layers cost 2 points, so no single revert from all-int8 helps
    result = _decide(lambda int8: 2.0 if len(int8) > 3 else 0.3 * len(int8), ["a", "b"])
    steps = [c.step for c in result.candidates]
    assert "fixed rules" in steps and result.met
    assert len(result.int8_layers) == 3 and {"a", "b"} < set(result.int8_layers)  # the rules, plus one added back
    assert [c.step for c in result.candidates if c.accepted][:2] == ["all int8", "fixed rules"]
    assert any(s.startswith("add ") for s in steps) and result.notes


def test_the_fixed_rules_do_not_replace_a_search_that_keeps_more_layers_int8():
    result = _decide(lambda int8: 0.3 * len(int8), ["a"])
    assert result.met and len(result.int8_layers) == 3  # three reverts from six meet the 1-point bound
    rules = next(c for c in result.candidates if c.step == "fixed rules")
    assert rules.meets_bounds and not rules.accepted and not result.notes


def test_a_candidate_that_does_not_run_is_never_chosen():
    from sift_deploy.precision.pareto import mark_pareto
    from sift_deploy.precision.search import search

    def evaluate(int8: frozenset) -> Measurement:
        if "f" in int8:  # say, the runtime aborts whenever the last layer is int8
            return Measurement(tuple(sorted(int8)), 0.0, {"ssim": 0.40}, parity_failures=["does not run: abort"],
                               parity_shortfall=1e6, runs=False)
        return Measurement(tuple(sorted(int8)), REFERENCE.accuracy - 0.001 * len(int8), {"ssim": 0.40})

    result = search(LAYERS, evaluate, REFERENCE, SearchBounds(1.0, 0.03, 12))
    assert not result.candidates[0].runs and result.met and result.int8_layers == ["a", "b", "c", "d", "e"]
    mark_pareto(result.candidates)
    assert not any(c.pareto for c in result.candidates if not c.runs)


def test_a_layer_whose_int8_leaves_the_artifact_unchanged_is_named():
    from sift_deploy.precision.search import search

    def evaluate(int8: frozenset) -> Measurement:
        effective = int8 - {"f"}  # the converter folds f: its precision never reaches the artifact
        drop = 2.0 if len(effective) > 3 else 0.3 * len(effective)
        return Measurement(tuple(sorted(int8)), REFERENCE.accuracy - drop / 100, {"ssim": 0.40},
                           artifact_sha256="-".join(sorted(effective)))

    result = search(LAYERS, evaluate, REFERENCE, SearchBounds(1.0, 0.03, 12), rule_layers=["a", "b"])
    assert result.met and "f" in result.int8_layers
    assert any("does not change what the runtime runs" in note and "f" in note.split("marking ")[1] for note in result.notes)
