"""The report `sift-deploy bench --json` writes, and reads back as a `--baseline`.

Types are strict (a string "768" is not a count), because a baseline's figures are compared with
this run's. Keys that bench writes only sometimes (a budget's `reason`, the accuracy figures that
need labels, a baseline item's `note`) are optional; the others are required, null where bench
writes null. Which backends exist is not part of the schema: `bundle.backend` is a name from
`sift_deploy.backends.export_targets()`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag

from .base import Document

SCHEMA_VERSION = 1

Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
Milliseconds = Annotated[float, Field(ge=0)]


class Part(Document):
    model_config = ConfigDict(strict=True)


class Tool(Part):
    name: str
    version: str


class BundleFacts(Part):
    path: str
    target: str
    backend: str = Field(description="the bundle's backend (a name from sift_deploy.backends.export_targets())")
    precision: Literal["fp32", "fp16", "int8"]
    artifact: str = Field(description="the edge artifact's file name inside the bundle")
    artifact_bytes: Count
    model: str | None
    input_size: int | None


class RuntimeFacts(Part):
    name: str
    kind: Literal["native", "stand-in"]
    label: str = Field(description="what ran, from the backend's description (a stand-in says so)")
    versions: dict[str, str]


class Settings(Part):
    iterations: Positive
    warmup: Count
    threads: Positive
    threads_source: str
    batch: Positive
    inputs: str
    timer: str
    tolerance_pct: Annotated[float, Field(ge=0)]


class Latency(Part):
    """Per-call figures in ms over the timed loop; load and first inference measured once."""

    runtime_import_ms: float
    load_ms: float
    first_inference_ms: float
    p50_ms: Milliseconds
    p90_ms: Milliseconds
    p99_ms: Milliseconds
    mean_ms: Milliseconds
    std_ms: Milliseconds
    min_ms: Milliseconds
    max_ms: Milliseconds
    per_image_p50_ms: float
    throughput_images_per_s: float


class MemoryMeasured(Part):
    """RSS of a fresh process that imports numpy, the runtime and the runner only, in MB."""

    method: str
    baseline_rss_mb: float | None
    after_load_rss_mb: float | None
    after_inference_rss_mb: float | None
    peak_rss_mb: float | None
    peak_over_baseline_mb: float | None
    hwm_reset: bool
    runtime_import_ms: float
    cold_load_ms: float
    inferences: Count
    torch_imported: bool


class Skipped(Part):
    skipped: str = Field(description="why this part was not measured")


def _measured_or_skipped(value: object) -> str:
    return "skipped" if isinstance(value, dict) and "skipped" in value else "measured"


class PerDtype(Part):
    fp32: Positive
    fp16: Positive
    int8: Positive


class Int8Wire(Part):
    dtype: str
    scheme: str
    channels: Positive
    scales_bytes_once: Count
    note: str


class CompressedSize(Part):
    mean_bytes: float
    p50_bytes: float
    max_bytes: Count
    ratio_to_raw: float


class CompressedPerDtype(Part):
    fp32: CompressedSize
    fp16: CompressedSize
    int8: CompressedSize


class CodecResult(Part):
    setting: str
    per_image: CompressedPerDtype
    round_trip: bool


class Compression(Part):
    codec: Literal["zstd", "zlib", "lzma"] = Field(description="the codec the summary shows")
    images: Positive
    measured_on: str
    codecs: dict[str, CodecResult]


class WireAccuracy(Part):
    """Top-1 through the bundle's float cloud with z sent as fp32 and as int8; accuracies need labels."""

    cloud: str
    images: Positive
    top1_agreement_int8_vs_fp32_wire: float
    top1_agreement_int8_wire_vs_float_model: float
    top1_agreement_fp32_wire_vs_float_model: float
    accuracy_fp32_wire: float | None = None
    accuracy_int8_wire: float | None = None
    accuracy_cost_points: float | None = None


class Features(Part):
    shape: list[Positive]
    numel: Positive
    bytes_per_image: PerDtype
    int8_wire: Int8Wire
    compression: Compression
    wire_accuracy: Annotated[Annotated[WireAccuracy, Tag("measured")] | Annotated[Skipped, Tag("skipped")],
                             Discriminator(_measured_or_skipped)]


class Provenance(Part):
    device_model: str
    device_model_source: str
    cpu_model: str | None
    machine: str
    cores_online: int | None
    cores_usable: Positive
    cpu_governor: str
    os: str
    kernel: str
    python: str
    runtime_versions: dict[str, str]
    threads: Positive
    l4t_release: str | None
    nv_tegra_release: str | None
    load_average_1_5_15: list[float] | None


class TimingNoise(Part):
    """Whether other work competed with the timed loop (bench warns; the run still counts)."""

    load_average_before: list[float] | None = Field(description="1/5/15-minute load average before the timed loop")
    load_average_after: list[float] | None
    cores_usable: Positive
    p99_over_p50: float | None
    noisy: bool = Field(description="busy before timing, or p99/p50 above 10")
    reasons: list[str]


class BudgetItem(Part):
    figure: str
    budget: str = Field(description="the profile's budget key, e.g. latency_p50_ms")
    limit: float
    measured: float | None
    unit: str
    passed: bool | None = Field(description="null when the budget is not checked (see budgets.reason)")


class Budgets(Part):
    checked: bool
    profile: str | None
    items: list[BudgetItem]
    reason: str | None = None


class BaselineItem(Part):
    figure: str
    unit: str
    baseline: float | None
    measured: float | None
    change_pct: float | None
    regressed: bool
    note: str | None = None


class BaselineComparison(Part):
    path: str
    created: str | None
    tolerance_pct: float
    items: list[BaselineItem]


class Floor(Part):
    """The bundle's compute floor on this machine: edge MACs x batch / this runtime's peak at this precision."""
    edge_macs: Positive
    batch: Positive
    probe: str
    probe_macs: Positive
    probe_p50_ms: Milliseconds
    peak_gmacs_per_s: float
    floor_ms: Milliseconds
    p50_over_floor: float | None
    note: str


class ProfiledOp(Part):
    node: str
    op_type: str
    category: Literal["quantize_dequantize", "layout", "compute"]
    us: Annotated[float, Field(ge=0)] = Field(description="mean time of the node per run, microseconds")
    share: Annotated[float, Field(ge=0, le=1)] = Field(description="of the sum of all op times")


class OpTypeShare(Part):
    op_type: str
    us: Annotated[float, Field(ge=0)]
    share: Annotated[float, Field(ge=0, le=1)]


class CategoryShares(Part):
    quantize_dequantize: Annotated[float, Field(ge=0, le=1)]
    layout: Annotated[float, Field(ge=0, le=1)]
    compute: Annotated[float, Field(ge=0, le=1)]


class OpProfile(Part):
    """`bench --profile`: per-op times from the runtime's profiler or per-node timing (backends/profiling.py)."""
    method: str
    runs: Positive
    batch: Positive
    op_us_total: Annotated[float, Field(ge=0)]
    run_us: float | None = Field(description="a whole profiled run, microseconds (profiling slows it down)")
    shares: CategoryShares
    op_types: list[OpTypeShare]
    ops: list[ProfiledOp] = Field(description="every op, slowest first")
    notes: list[str]


class BenchReport(Document):
    """`sift-deploy bench --json`: latency, memory and features on the wire of one bundle on one device."""

    model_config = ConfigDict(strict=True)

    schema_version: Literal[1]
    tool: Tool
    created: str
    bundle: BundleFacts
    runtime: RuntimeFacts
    settings: Settings
    latency: Latency
    memory: Annotated[Annotated[MemoryMeasured, Tag("measured")] | Annotated[Skipped, Tag("skipped")],
                      Discriminator(_measured_or_skipped)]
    features: Features
    provenance: Provenance
    torch_imported: bool
    notes: list[str]
    timing_noise: TimingNoise | None = Field(default=None, description="absent in reports of earlier versions")
    budgets: Budgets
    baseline: BaselineComparison | None
    failures: list[str]
    passed: bool
    profile: OpProfile | None = Field(default=None, description="present with --profile")
    floor: Annotated[Annotated[Floor, Tag("measured")] | Annotated[Skipped, Tag("skipped")],
                     Discriminator(_measured_or_skipped)] | None = Field(default=None, description="the compute floor")
