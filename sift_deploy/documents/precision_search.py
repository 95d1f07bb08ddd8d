"""The `precision_search` section of a manifest: what `export --precision auto` chose and every
candidate it measured on the real artifact (sift_deploy/precision/)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import StrictDocument, absent


class SearchBoundsRecord(StrictDocument):
    max_acc_drop_points: float
    max_leak_increase_ssim: float
    max_iterations: int


class FloatReference(StrictDocument):
    accuracy: float = Field(description="top-1 of the float edge + float cloud on the search's test images")
    probe: dict[str, float] = Field(description="the leakage probe on the float edge's features")


class CandidateRecord(StrictDocument):
    index: int
    step: str = Field(description="'all int8', 'sensitivity of LAYER' (LAYER reverted alone), 'revert LAYER', "
                                  "'fixed rules' (the backend's own int8 choice) or 'add LAYER' (made int8 again)")
    int8_count: int
    float_layers: list[str]
    accuracy_drop_points: float = Field(description="float top-1 minus candidate top-1, in points")
    leakage_increase_ssim: float = Field(description="probe SSIM of the candidate minus that of the float edge")
    probe: dict[str, float]
    latency_us: float | None = Field(description="batch-1 p50 on the export machine through the backend's runner")
    bytes: int | None
    parity: dict[str, float] = Field(description="cosine_mean, max_abs, top1_agreement against the float edge")
    meets_bounds: bool = Field(description="accuracy, leakage and the profile's parity thresholds all hold")
    accepted: bool = Field(description="the search kept this candidate as its current state")
    pareto: bool = Field(description="no other candidate is at least as good in accuracy drop, leakage and bytes")
    runs: bool | None = absent("false: the runtime could not build or run this candidate (absent: it ran)")
    problems: list[str] | None = absent("why it does not run")


class PrecisionSearch(StrictDocument):
    mode: Literal["auto"]
    runtime: str = Field(description="the runner candidates were measured with (a stand-in is labelled)")
    bounds: SearchBoundsRecord
    met: bool
    unmet: list[str] = Field(description="the bounds the chosen candidate breaks (empty when met)")
    layers: dict[str, Literal["int8", "fp32"]] = Field(description="chosen precision of every quantizable layer")
    float_reference: FloatReference
    probe: dict[str, Any] = Field(description="how the leakage probe was made")
    data: dict[str, Any] = Field(description="images the search measured on")
    sensitivities: dict[str, float] = Field(description="score improvement from reverting each layer alone")
    candidates: list[CandidateRecord]
    iterations: int = Field(description="verified reverts to float, plus verified additions after the fixed rules")
    notes: list[str] | None = absent("how the search went where it is not plain greedy reverts")
    seconds: float
    pareto_png: str = Field(description="bundle path of the Pareto plot")
