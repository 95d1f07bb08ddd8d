"""`manifest.json` of a bundle, as `sift_deploy/export.py` writes it.

What every backend writes the same way is typed; `export.details` (quantization choices, session
options, build commands) and the checkpoint's own metadata differ by backend and by checkpoint and
stay free-form tables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .base import StrictDocument, absent, schema_version
from .precision_search import PrecisionSearch
from .profile import Precision, ParityThresholds, ProfileDocument


class ToolInfo(StrictDocument):
    name: str
    version: str


class SourceCheckpoint(StrictDocument):
    path: str
    sha256: str
    official_format: bool = Field(description="true when read from the official code's state_dict")
    metadata: dict[str, Any]


class ModelInfo(StrictDocument):
    arch: str
    split_point: str
    in_channels: int
    input_size: int
    num_classes: int
    width: int | None = absent("the official `ndf` of the 4-block CNNs (64 where absent)")
    class_names: list[str] | None = None
    edge_macs: int | None = absent("multiply-accumulates of the edge per image (conv + linear)")


class ProfileRecord(ProfileDocument):
    """The target profile the bundle was exported for, with the file it was read from."""

    source: str


class Normalization(StrictDocument):
    """(x - mean) / std per input channel; a single number (bundles before per-channel records) is the
    same for every channel."""

    mean: list[float] | float
    std: list[float] | float


class ArtifactTensor(StrictDocument):
    """An input or output tensor of the exported file itself, read back from the file at export."""

    name: str
    dtype: str = Field(description="element type of the file's tensor, e.g. int8 for a full-integer .tflite input")
    shape: list[int | None] = Field(description="in the artifact's own layout; null is a dynamic dimension")
    scale: float | None = absent("quantization scale, when the tensor is quantized: real = scale * (q - zero_point)")
    zero_point: int | None = absent("quantization zero-point, when the tensor is quantized")


class InputSpec(StrictDocument):
    shape: list[int | None] = Field(description="NCHW; null is the batch dimension")
    dtype: str = Field(description="what a runner takes (runners quantize and transpose for the artifact)")
    layout: str
    artifact_layout: str = Field(description="the layout the exported artifact itself takes")
    artifact: ArtifactTensor | None = absent("the exported file's own input tensor (absent in bundles written before it was recorded)")
    normalization: Normalization
    preprocessing: str


class WireQuantization(StrictDocument):
    """Per-channel int8 (or uint8) quantization of the features z for the network link."""

    scheme: str
    dtype: Literal["uint8", "int8"]
    axis: int
    scales: list[float]
    zero_points: list[int]


class FeaturePerturbation(StrictDocument):
    """Random noise and dropout on z, applied by the sender (sift_deploy.perturbation.perturb)."""

    noise_std: float = Field(ge=0)
    drop_rate: float = Field(ge=0, lt=1)
    applied: str = Field(description="where and how the perturbation runs")


class FeatureSpec(StrictDocument):
    shape: list[int | None]
    dtype: str = Field(description="what a runner returns")
    artifact: ArtifactTensor | None = absent("the exported file's own output tensor")
    split_point: str
    wire_int8: WireQuantization
    perturbation: FeaturePerturbation | None = absent("a random perturbation of z before the wire (a baseline defence)")


class CalibrationInfo(StrictDocument):
    source: str
    sha256: str | None = Field(description="of the calibration file; null for a dataset's train split")
    provenance: dict[str, Any] | None = absent("how the calibration file was made")
    indices_seed: int | None = absent("seed of the draw from a dataset's train split")
    count: int
    seed: int
    method: str


class ExportInfo(StrictDocument):
    files: dict[str, str] = Field(description="role -> file name, e.g. edge -> edge.int8.onnx")
    details: dict[str, Any] = Field(description="backend-specific: quantization, opset, session, build commands")
    seconds: float
    seed: int


class WireParity(StrictDocument):
    top1_agreement: float
    accuracy: float | None = absent()


class ParityResult(StrictDocument):
    """Parity of the exported edge against the float PyTorch edge, measured at export."""

    images: int
    cosine_mean: float
    cosine_min: float
    max_abs: float
    feature_max: float
    max_abs_relative: float | None = absent("max_abs / feature_max")
    top1_agreement: float | None = absent()
    top1_agreement_interval: list[float] | None = absent("95 % Wilson interval of top1_agreement")
    top1_agreement_margin: float | None = absent("top1_agreement minus the profile's bound")
    interval_narrower_than_margin: bool | None = absent("the sample is large enough to tell the bound")
    sample: dict[str, Any] | None = absent("the images parity ran on: how many of how many, drawn how")
    note: str | None = absent()
    accuracy_float: float | None = absent()
    accuracy_deployed: float | None = absent()
    wire_int8: WireParity | None = absent()
    thresholds: ParityThresholds | None = absent()
    failures: list[str]
    passed: bool
    source: str = Field(description="the images parity ran on")
    runtime: str


class FileRecord(StrictDocument):
    sha256: str
    bytes: int


class Manifest(StrictDocument):
    schema_version: schema_version(1)
    tool: ToolInfo
    created: str = Field(description="ISO 8601 time of the export (UTC)")
    source_checkpoint: SourceCheckpoint
    model: ModelInfo
    target: str
    profile: ProfileRecord
    backend: str
    precision: Precision
    edge_file: str
    cloud_file: str
    input: InputSpec
    features: FeatureSpec
    calibration: CalibrationInfo
    export: ExportInfo
    versions: dict[str, str]
    parity: ParityResult
    serving: dict[str, Any] | None = absent("the Triton model repository in triton/ (serve/repository.py)")
    warnings: list[str] | None = absent("what export warned about (assumed normalisation, data set other than the "
                                        "checkpoint's)")
    floor_probe: dict[str, Any] | None = absent("a conv exported like the edge, in probe/: bench times it for the "
                                                "runtime's peak MAC rate and the bundle's compute floor")
    precision_search: PrecisionSearch | None = absent("per-layer precisions chosen by `export --precision auto`")
    files: dict[str, FileRecord] = Field(description="every file of the bundle but the manifest: relative path -> hash and size")
