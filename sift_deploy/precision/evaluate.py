"""Measure one precision candidate on the real artifact: export the edge with exactly these layers
int8 (the backend's `int8_layers` option) into a temporary folder, open it with the backend's own
runner (a Jetson Q/DQ ONNX under its labelled ONNX Runtime stand-in when TensorRT is not here),
and measure top-1 accuracy through the float cloud, the leakage probe, batch-1 latency and bytes,
and the profile's parity figures against the float edge (what `export` and `verify` will hold the
bundle to: a candidate that breaks them is not a deployable answer). Every configuration is measured once: results are cached by the set of int8 layers.
A candidate the runtime cannot build or run (LiteRT aborting on a full-integer graph) is measured as
infeasible: it breaks a bound named after the reason and scores far worse than any that runs."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..backends import get_backend
from ..backends.base import Artifacts, ExportRequest, run_in_batches
from ..backends.torch.runner import torch_outputs
from ..bench.timing import time_calls, warm_up
from ..errors import SiftError
from ..fileio import sha256_file
from ..parity import compare, wilson_interval

LATENCY_WARMUP = 5
LATENCY_CALLS = 40
INFER_BATCH = 256
INFEASIBLE_SHORTFALL = 1e6  # a candidate that does not run: worse than any that does, still finite to compare


@dataclass
class SearchData:
    """Model inputs (normalised) and [0, 1] images the search measures on."""

    eval_inputs: np.ndarray  # test-split images for accuracy
    eval_labels: np.ndarray
    aux_inputs: np.ndarray  # the attacker's queries (aux split)
    probe_inputs: np.ndarray  # private images the probe reconstructs (a prefix of the test split)


@dataclass
class Measurement:
    int8_layers: tuple[str, ...]
    accuracy: float
    probe: dict
    latency_us: float | None = None
    bytes: int | None = None
    runtime: str = "torch (float)"
    parity: dict = field(default_factory=dict)  # cosine_mean, max_abs, top1_agreement vs the float edge
    parity_failures: list[str] = field(default_factory=list)
    parity_shortfall: float = 0.0  # how far outside the parity thresholds, each in units of its margin
    runs: bool = True  # False: the runtime could not build or run this candidate
    artifact_sha256: str | None = None  # two layer sets may convert to the same bytes (LiteRT folds some)



@dataclass
class ExportSettings:
    backend: str
    input_shape: tuple[int, int, int]
    calibration: np.ndarray
    calib_method: str = "minmax"
    options: dict = field(default_factory=dict)  # the profile's [backend] table
    threads: int = 1
    seed: int = 0
    parity: dict | None = None  # the profile's int8 thresholds: min_cosine, max_abs, min_top1_agreement


class CandidateEvaluator:
    def __init__(self, edge, cloud, settings: ExportSettings, data: SearchData, probe):
        self.edge, self.cloud, self.settings, self.data, self.probe = edge.eval(), cloud.eval(), settings, data, probe
        self.backend = get_backend(settings.backend)
        self.runtime = None
        if self.backend.stand_ins and not self.backend.available()[0]:
            self.runtime = next(iter(self.backend.stand_ins))
        self.cache: dict[frozenset, Measurement] = {}
        self.float = self._measure_float()

    def request(self, out_dir: Path, int8_layers) -> ExportRequest:
        s = self.settings
        options = {**s.options, "int8_layers": sorted(int8_layers), "measure": False}
        return ExportRequest(edge=self.edge, input_shape=s.input_shape, precision="int8", calibration=s.calibration,
                             calib_method=s.calib_method, out_dir=out_dir, options=options, seed=s.seed)

    def layers(self) -> list[str]:
        return self.backend.quantizable_layers(self.request(Path("."), []))

    def rule_layers(self) -> list[str] | None:
        """What the backend's fixed int8 rules choose for this edge (a default int8 export), or None."""
        s = self.settings
        with tempfile.TemporaryDirectory(prefix="sift-precision-rules-") as tmp:
            request = ExportRequest(edge=self.edge, input_shape=s.input_shape, precision="int8",
                                    calibration=s.calibration, calib_method=s.calib_method, out_dir=Path(tmp),
                                    options={**s.options, "measure": False}, seed=s.seed)
            try:
                result = self.backend.export(request)
            except SiftError:
                return None
            return self.backend.rule_int8_layers(request, result.details)

    def _measure_float(self) -> Measurement:
        d = self.data
        z_aux = torch_outputs(self.edge, d.aux_inputs)
        self.probe.fit(z_aux)
        self.z_eval = torch_outputs(self.edge, d.eval_inputs)
        self.pred_eval = torch_outputs(self.cloud, self.z_eval).argmax(1)
        accuracy = float((self.pred_eval == d.eval_labels).mean())
        return Measurement((), accuracy, self.probe.measure(z_aux, torch_outputs(self.edge, d.probe_inputs)))

    def _parity(self, z_eval: np.ndarray, logits: np.ndarray) -> tuple[dict, list[str], float]:
        numbers = compare(self.z_eval, z_eval, self.pred_eval, logits, None, self.settings.parity)
        kept = {k: numbers[k] for k in ("cosine_mean", "max_abs", "max_abs_relative", "top1_agreement")}
        limits = self.settings.parity
        if not limits:
            return kept, [], 0.0
        # the agreement is judged at the lower end of its 95 % interval: a candidate that only just meets the
        # bound on the search's images would miss it on the export's own parity sample as often as not
        n = len(logits)
        low, _ = wilson_interval(round(kept["top1_agreement"] * n), n)
        kept["top1_agreement_low"] = low
        bound = limits["min_top1_agreement"]
        shortfall = (max(limits["min_cosine"] - kept["cosine_mean"], 0.0) / max(1.0 - limits["min_cosine"], 1e-9)
                     + max(bound - low, 0.0) / max(1.0 - bound, 1e-9))
        for key in ("max_abs", "max_abs_relative"):
            if limits.get(key) is not None:
                shortfall += max(kept[key] - limits[key], 0.0) / max(limits[key], 1e-9)
        failures = [f"parity: {f}" for f in numbers["failures"]]
        if kept["top1_agreement"] >= bound > low:
            failures.append(f"parity: top-1 agreement {kept['top1_agreement']:.2%} on {n:,} images, but the lower end of "
                            f"its 95 % interval ({low:.2%}) is below {bound:.2%}")
        return kept, failures, shortfall

    def __call__(self, int8_layers) -> Measurement:
        key = frozenset(int8_layers)
        if key not in self.cache:
            self.cache[key] = self._measure(key)
        return self.cache[key]

    def _measure(self, key: frozenset) -> Measurement:
        d = self.data
        with tempfile.TemporaryDirectory(prefix="sift-precision-") as tmp:
            try:
                result = self.backend.export(self.request(Path(tmp), key))
            except SiftError as exc:  # the runtime refuses or aborts on this mix: not a deployable answer
                return Measurement(tuple(sorted(key)), 0.0, dict(self.float.probe), runtime="does not run",
                                   parity_failures=[f"does not run: {exc}"], parity_shortfall=INFEASIBLE_SHORTFALL,
                                   runs=False)
            edge_file = result.files["edge"]
            size = (Path(tmp) / edge_file).stat().st_size
            digest = sha256_file(Path(tmp) / edge_file)
            runner = self.backend.create_runner(Artifacts(folder=Path(tmp)), edge_file, result.details,
                                                self.settings.threads, self.runtime)
            with runner:
                def infer(x):
                    return run_in_batches(runner.infer, x, INFER_BATCH)

                z_aux, z_eval, z_probe = infer(d.aux_inputs), infer(d.eval_inputs), infer(d.probe_inputs)
                latency = _p50_us(runner.infer, d.eval_inputs[:1])
                label = runner.label
        logits = torch_outputs(self.cloud, z_eval)
        parity, failures, shortfall = self._parity(z_eval, logits)
        return Measurement(tuple(sorted(key)), float((logits.argmax(1) == d.eval_labels).mean()),
                           self.probe.measure(z_aux, z_probe), latency, size, label, parity, failures, shortfall,
                           artifact_sha256=digest)


def _p50_us(infer, x: np.ndarray) -> float:
    """p50 through the tree's one timing loop (bench.timing)."""
    warm_up(infer, [x], LATENCY_WARMUP)
    return round(float(np.median(time_calls(infer, [x], LATENCY_CALLS).wall_ns)) / 1000.0, 1)
