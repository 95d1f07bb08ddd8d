"""`export --precision auto`: load the images, build the evaluator, run the search, and turn the
result into the manifest's `precision_search` section and the bundle's Pareto PNG."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data.preprocess import fit_to_size, model_input, to_unit
from .evaluate import CandidateEvaluator, ExportSettings, SearchData
from .pareto import mark_pareto, pareto_png
from .probe import DecoderProbe, ProbeSettings
from .search import OnCandidate, SearchBounds, SearchResult, search

PARETO_PNG = "precision/pareto.png"


@dataclass(frozen=True)
class SearchSizes:
    eval_images: int = 2000  # test split, accuracy
    aux_pairs: int = 2000  # aux split, the probe decoder's training pairs
    probe_images: int = 500  # test split prefix the probe reconstructs


@dataclass
class SearchOutcome:
    result: SearchResult
    record: dict


def search_data(data_dir: Path | None, input_size: int, mean: float, std: float,
                sizes: SearchSizes) -> tuple[SearchData, np.ndarray, np.ndarray, str]:
    """(data, aux images in [0, 1], probe images in [0, 1], source) from the dataset's aux and test splits."""
    from ..data.sources import load_dataset
    from ..data.splits import make_splits

    splits = make_splits(load_dataset(data_dir))
    aux = splits.aux.images[:sizes.aux_pairs]
    test, labels = splits.test.images[:sizes.eval_images], splits.test.labels[:sizes.eval_images]
    probe = test[:sizes.probe_images]
    data = SearchData(eval_inputs=model_input(test, input_size, mean, std), eval_labels=np.asarray(labels),
                      aux_inputs=model_input(aux, input_size, mean, std),
                      probe_inputs=model_input(probe, input_size, mean, std))
    return data, to_unit(fit_to_size(aux, input_size)), to_unit(fit_to_size(probe, input_size)), splits.info.source


def run_search(edge, cloud, export: ExportSettings, data: SearchData, probe, bounds: SearchBounds,
               on_candidate: OnCandidate | None = None, source: str = "") -> SearchOutcome:
    with one_torch_thread():
        evaluator = CandidateEvaluator(edge, cloud, export, data, probe)
        layers = evaluator.layers()
        result = search(layers, evaluator, evaluator.float, bounds, on_candidate, rule_layers=evaluator.rule_layers())
    mark_pareto(result.candidates)
    return SearchOutcome(result, _record(result, evaluator, bounds, probe, data, source))


@contextmanager
def one_torch_thread():
    """Measured on the shared 2-core host under load: one epoch of the probe decoder took 7.5 s with
    one torch thread and 32 s with two (oversubscription); the runtimes keep their own settings."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def decoder_probe(x_aux: np.ndarray, x_probe: np.ndarray, seed: int = 0) -> DecoderProbe:
    return DecoderProbe(x_aux, x_probe, ProbeSettings(seed=seed))


def write_pareto(outcome: SearchOutcome, bundle_dir: Path, bounds: SearchBounds) -> Path:
    path = Path(bundle_dir) / PARETO_PNG
    pareto_png(outcome.result.candidates, bounds, path, outcome.result.best)
    return path


def _record(result: SearchResult, evaluator: CandidateEvaluator, bounds: SearchBounds, probe, data: SearchData,
            source: str) -> dict:
    int8 = set(result.int8_layers)
    return {
        "mode": "auto",
        "runtime": evaluator.backend.stand_ins.get(evaluator.runtime, evaluator.backend.label),
        "bounds": asdict(bounds),
        "met": result.met,
        "unmet": result.unmet,
        "layers": {name: "int8" if name in int8 else "fp32" for name in result.layers},
        "float_reference": {"accuracy": evaluator.float.accuracy, "probe": evaluator.float.probe},
        "probe": probe.describe() if hasattr(probe, "describe") else {"name": type(probe).__name__},
        "data": {"source": source, "eval_images": int(len(data.eval_labels)), "aux_pairs": int(len(data.aux_inputs)),
                 "probe_images": int(len(data.probe_inputs))},
        "sensitivities": {k: round(v, 6) for k, v in result.sensitivities.items()},
        "candidates": [{"index": c.index, "step": c.step, "int8_count": len(c.int8_layers),
                        "float_layers": [name for name in result.layers if name not in c.int8_layers],
                        "accuracy_drop_points": round(c.accuracy_drop_points, 4),
                        "leakage_increase_ssim": round(c.leakage_increase_ssim, 5),
                        "probe": {k: round(v, 6) for k, v in c.probe.items()}, "latency_us": c.latency_us,
                        "bytes": c.bytes, "parity": {k: round(v, 6) for k, v in c.parity.items()},
                        "meets_bounds": c.meets_bounds, "accepted": c.accepted, "pareto": c.pareto,
                        **({} if c.runs else {"runs": False, "problems": list(c.parity_failures)})}
                       for c in result.candidates],
        "iterations": result.iterations,
        "notes": result.notes,
        "seconds": result.seconds,
        "pareto_png": PARETO_PNG,
    }


def auto_precision(ckpt, profile, calibration: np.ndarray, calib_method: str, seed: int, data_dir: Path | None,
                   bounds: SearchBounds, on_candidate: OnCandidate | None = None,
                   sizes: SearchSizes = SearchSizes()) -> SearchOutcome:
    """The search `export --precision auto` runs for a checkpoint and a target profile."""
    spec = ckpt.spec
    data, x_aux, x_probe, source = search_data(data_dir, spec.input_size, ckpt.mean, ckpt.std, sizes)
    settings = ExportSettings(profile.backend, spec.input_shape, calibration, calib_method,
                              dict(profile.backend_options), profile.threads, seed, profile.parity["int8"].thresholds())
    return run_search(ckpt.model.edge, ckpt.model.cloud, settings, data, decoder_probe(x_aux, x_probe, seed), bounds,
                      on_candidate, source)


def search_bounds(max_acc_drop: float | None = None, max_leak_increase: float | None = None,
                  max_iterations: int | None = None, bounds_file: Path | None = None) -> SearchBounds:
    """The command line's values, each defaulting to the bounds file's (accuracy.max_drop_points,
    leakage.max_ssim_increase, search.max_iterations)."""
    from ..bounds import load_bounds
    from ..errors import SiftError

    limits = load_bounds(bounds_file)
    out = SearchBounds(
        max_acc_drop if max_acc_drop is not None else limits["accuracy"]["max_drop_points"],
        max_leak_increase if max_leak_increase is not None else limits["leakage"]["max_ssim_increase"],
        max_iterations if max_iterations is not None else limits["search"]["max_iterations"])
    if out.max_acc_drop_points < 0 or out.max_leak_increase_ssim < 0 or out.max_iterations < 1:
        raise SiftError("--max-acc-drop and --max-leak-increase must be >= 0 and --max-iterations >= 1")
    return out
