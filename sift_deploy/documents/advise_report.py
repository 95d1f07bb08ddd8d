"""The report `sift-deploy advise` writes (advise.json): per candidate cut, what it costs (latency,
bytes), what it keeps (accuracy) and what it leaks (decoder SSIM, dCor), the Pareto front of
leakage against end-to-end latency, and the recommended cut."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from .base import Document, schema_version
from .check_report import AttackBudgetRecord, AttackScores, Interval

SCHEMA_VERSION = 1


class Latency(Document):
    """Per-call latency at batch 1 from the one timing loop (bench/timing.py)."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    iterations: int
    runtime: str = Field(description="the runner that ran, with its stand-in label where it is one")


class WireBytes(Document):
    """Bytes per image of z on the wire."""

    fp32: int
    int8: int
    int8_compressed: float = Field(description="mean bytes of each image's int8 message after lossless compression")
    codec: str


class Leakage(Document):
    """The fast attack on the deployed features: one inverse decoder, scored on private test images."""

    decoder: AttackScores
    dcor: float = Field(description="distance correlation dCor(x, z) of the deployed features")
    dcor_samples: int


class CutResult(Document):
    name: str
    default: bool = Field(description="the model's own split (the funnel for SiftFunnel models)")
    block_idx: Optional[int] = Field(description="the official --block_idx that protects this cut, if any")
    bundle: str
    precision: str = Field(description="the profile's, or fp32 where its exporter refused that precision for this cut")
    z_shape: list[int]
    bytes: WireBytes
    edge_latency: Latency
    cloud_latency: Latency
    transfer_ms: float = Field(description="int8 compressed bytes at the report's bandwidth")
    end_to_end_ms: float = Field(description="edge p50 + transfer + cloud p50")
    accuracy_int8_wire: Interval
    accuracy_fp32_wire: float
    parity_passed: bool
    leakage: Leakage
    pareto: bool = Field(description="no other cut is both faster end to end and leaks less (mean SSIM)")
    within_bound: Optional[bool] = Field(description="SSIM interval's upper end <= max_leakage_ssim; null without a bound")
    seconds: float


class Recommendation(Document):
    cut: Optional[str]
    reason: str


class AdviseSettings(Document):
    bandwidth_mbps: float
    max_leakage_ssim: Optional[float]
    seed: int
    latency_iterations: int
    latency_warmup: int
    budget: AttackBudgetRecord
    decoder_seed: int
    data: str


class CheckpointRecord(Document):
    path: str
    sha256: str
    arch: str
    official_format: bool


class AdviseReport(Document):
    schema_version: schema_version(SCHEMA_VERSION)
    tool_version: str
    created: str
    checkpoint: CheckpointRecord
    target: str
    backend: str
    precision: str
    settings: AdviseSettings
    cuts: list[CutResult]
    recommendation: Recommendation
    warnings: list[str]
    seconds: float
