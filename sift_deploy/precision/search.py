"""Greedy revert-to-float with step-back under two bounds: accuracy drop and leakage increase.

After NNCF's accuracy control and AIMET's AMP: start from every quantizable layer int8; if a bound
is broken, rank the layers by sensitivity and revert them to float one at a time, most sensitive
first. A layer's sensitivity is how much reverting it alone (from all-int8) improves the combined
score drop / max_drop + leak / max_leak, so a layer whose int8 adds leakage ranks high even when
accuracy does not notice it. It is measured once per layer (cached). Every revert is verified on
the real artifact; one that does not improve the score is stepped back (the layer stays int8) and
the next layer is tried. The revert phase stops when both bounds hold or after `max_iterations`
verified reverts. The target profile's parity thresholds (what `export` and `verify` hold the bundle
to) are a third, implicit bound, scored the same way.

Then the backend's own fixed rules (what a plain int8 export chooses) are measured as one more
candidate. Greedy reverts can stall where many small int8 errors add up and no single revert fixes
them; so when the rules meet the bounds and the revert phase did not, or kept fewer layers int8, the
search continues from the rules and adds int8 layers back, least sensitive first, keeping each one
that leaves both bounds met (at most `max_iterations` verified additions). So `auto` never returns
fewer int8 layers than the fixed rules when those meet the bounds. Otherwise it names the bound it
could not meet.

`evaluate(int8_layers) -> Measurement` does the measuring (precision/evaluate.py); this module
only decides.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from .evaluate import Measurement

ACCURACY = "accuracy drop"
LEAKAGE = "leakage increase"


@dataclass(frozen=True)
class SearchBounds:
    max_acc_drop_points: float
    max_leak_increase_ssim: float  # math.inf: an accuracy-only search
    max_iterations: int


@dataclass
class Candidate:
    index: int
    step: str  # "all int8", "sensitivity of LAYER", "revert LAYER"
    int8_layers: tuple[str, ...]
    accuracy_drop_points: float
    leakage_increase_ssim: float
    probe: dict
    latency_us: float | None
    bytes: int | None
    meets_bounds: bool
    parity: dict = field(default_factory=dict)
    parity_failures: list[str] = field(default_factory=list)
    parity_shortfall: float = 0.0
    accepted: bool = False
    pareto: bool = False
    runs: bool = True  # False: the runtime could not build or run it (never chosen, never on the Pareto set)
    artifact_sha256: str | None = None


@dataclass
class SearchResult:
    layers: list[str]
    int8_layers: list[str]
    met: bool
    unmet: list[str]
    candidates: list[Candidate]
    sensitivities: dict[str, float]
    iterations: int
    seconds: float
    best: Candidate | None = None
    notes: list[str] = field(default_factory=list)


OnCandidate = Callable[[str, int, int, Candidate | None], None]  # (what, done, planned, last)


def _figures(m: Measurement, ref: Measurement) -> tuple[float, float]:
    return 100.0 * (ref.accuracy - m.accuracy), m.probe["ssim"] - ref.probe["ssim"]


def broken_bounds(drop: float, leak: float, bounds: SearchBounds, parity_failures: list[str] = ()) -> list[str]:
    out = list(parity_failures)
    if drop > bounds.max_acc_drop_points:
        out.append(f"{ACCURACY}: {drop:.2f} points > {bounds.max_acc_drop_points:g}")
    if leak > bounds.max_leak_increase_ssim:
        out.append(f"{LEAKAGE}: {leak:+.4f} SSIM > {bounds.max_leak_increase_ssim:g}")
    return out


def score(c: Candidate, bounds: SearchBounds) -> float:
    """Lower is better; each figure in units of its bound, only the part above zero counts."""
    total = max(c.accuracy_drop_points, 0.0) / max(bounds.max_acc_drop_points, 1e-9) + c.parity_shortfall
    if math.isfinite(bounds.max_leak_increase_ssim):
        total += max(c.leakage_increase_ssim, 0.0) / max(bounds.max_leak_increase_ssim, 1e-9)
    return total


def search(layers: list[str], evaluate: Callable[[frozenset], Measurement], reference: Measurement,
           bounds: SearchBounds, on_candidate: OnCandidate | None = None,
           rule_layers: list[str] | None = None) -> SearchResult:
    """`rule_layers`: what the backend's fixed rules make int8 (None: not known, no rules phase)."""
    started = time.perf_counter()
    report = on_candidate or (lambda *_: None)
    candidates: list[Candidate] = []
    rules_known = rule_layers is not None and set(rule_layers) <= set(layers)
    planned = 1 + len(layers) + bounds.max_iterations + (1 + bounds.max_iterations if rules_known else 0)

    def measure(int8: frozenset, step: str) -> Candidate:
        report(step, len(candidates), planned, candidates[-1] if candidates else None)
        m = evaluate(int8)
        drop, leak = _figures(m, reference)
        c = Candidate(len(candidates), step, tuple(sorted(int8)), drop, leak, m.probe, m.latency_us, m.bytes,
                      not broken_bounds(drop, leak, bounds, m.parity_failures), m.parity, m.parity_failures,
                      m.parity_shortfall, runs=m.runs, artifact_sha256=m.artifact_sha256)
        candidates.append(c)
        return c

    current = measure(frozenset(layers), "all int8")
    current.accepted = True
    sensitivities: dict[str, float] = {}
    iterations = 0
    if not current.meets_bounds:
        for layer in layers:
            alone = measure(frozenset(layers) - {layer}, f"sensitivity of {layer}")
            sensitivities[layer] = score(current, bounds) - score(alone, bounds)
        for layer in sorted(layers, key=lambda name: -sensitivities[name]):
            if current.meets_bounds or iterations >= bounds.max_iterations or len(current.int8_layers) <= 1:
                break
            iterations += 1
            trial = measure(frozenset(current.int8_layers) - {layer}, f"revert {layer}")
            if score(trial, bounds) < score(current, bounds):
                trial.accepted = True
                current = trial
    notes: list[str] = []
    if rules_known and not (current.meets_bounds and set(rule_layers) <= set(current.int8_layers)):
        rules = measure(frozenset(rule_layers), "fixed rules")
        if rules.meets_bounds and (not current.meets_bounds or len(rules.int8_layers) > len(current.int8_layers)):
            rules.accepted = True
            current = rules
            notes.append(f"continued from the backend's fixed rules ({len(rule_layers)} int8 layers), which meet "
                         "the bounds where the reverts did not (or kept fewer layers int8)")
            additions = 0
            for layer in sorted(set(layers) - set(rule_layers), key=lambda name: (sensitivities.get(name, 0.0),
                                                                                   layers.index(name))):
                if additions >= bounds.max_iterations:
                    break
                additions += 1
                iterations += 1
                trial = measure(frozenset(current.int8_layers) | {layer}, f"add {layer}")
                if trial.meets_bounds:
                    trial.accepted = True
                    current = trial
    same = [c for c in candidates if c.artifact_sha256 and c.artifact_sha256 == current.artifact_sha256
            and len(c.int8_layers) < len(current.int8_layers)]
    if same:
        fewest = min(same, key=lambda c: len(c.int8_layers))
        inert = sorted(set(current.int8_layers) - set(fewest.int8_layers))
        notes.append(f"the chosen artifact is byte-identical to candidate {fewest.index}'s ({len(fewest.int8_layers)} "
                     f"int8 layers): marking {', '.join(inert)} int8 does not change what the runtime runs")
    report("done", len(candidates), len(candidates), candidates[-1])
    return SearchResult(layers=list(layers), int8_layers=list(current.int8_layers), met=current.meets_bounds,
                        unmet=broken_bounds(current.accuracy_drop_points, current.leakage_increase_ssim, bounds,
                                            current.parity_failures),
                        candidates=candidates, sensitivities=sensitivities, iterations=iterations,
                        seconds=round(time.perf_counter() - started, 1), best=current, notes=notes)
