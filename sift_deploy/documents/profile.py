"""A target (device) profile: the TOML files in sift_deploy/targets/ and users' own.

The backend name is checked by `profiles.parse_profile` against the backends this installation
knows, not here, so that the schema does not change when a backend is added."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..backends.base import PRECISIONS
from .base import StrictDocument, absent, schema_version

Precision = Literal[PRECISIONS]
LAYOUTS = ("NCHW", "NHWC")


class ParityThresholds(StrictDocument):
    """Parity of the exported edge against the float PyTorch edge on held-out real images."""

    min_cosine: float = Field(description="minimum mean cosine similarity of the transmitted features z")
    max_abs: float | None = absent("maximum absolute error of z")
    max_abs_relative: float | None = absent("maximum absolute error of z as a fraction of the float z's largest "
                                            "magnitude (int8: the error scales with z's range, which differs per model)")
    min_top1_agreement: float = Field(description="minimum top-1 agreement of exported edge -> float cloud with the float model")

    @model_validator(mode="after")
    def _one_max_abs(self) -> "ParityThresholds":
        if self.max_abs is None and self.max_abs_relative is None:
            raise ValueError("set max_abs (absolute) or max_abs_relative (a fraction of z's largest magnitude), or both")
        return self


class Budgets(StrictDocument):
    """What `sift-deploy bench` compares against (batch 1, the profile's threads)."""

    latency_p50_ms: float | None = absent()
    peak_memory_mb: float | None = absent()


class BackendOptions(StrictDocument):
    """Options every backend reads are typed; others are backend-specific and pass through."""

    model_config = ConfigDict(extra="allow")

    opset: int | None = absent("ONNX opset of the exported graph")
    layout: str | None = absent("input layout of the artifact: NCHW or NHWC (any case)")
    trt_version: str | None = absent("the TensorRT version of the device")

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, layout: str | None) -> str | None:
        if layout is not None and layout.upper() not in LAYOUTS:
            raise ValueError(f"layout '{layout}' is unknown; use {' or '.join(LAYOUTS)}")
        return layout


class ServingTable(StrictDocument):
    """How Triton serves the cloud half (see serve/settings.py for the meaning and the defaults)."""

    max_batch_size: int | None = absent("0 turns batching off")
    preferred_batch_sizes: list[int] | None = absent("dynamic batching: sizes the scheduler aims for")
    max_queue_delay_us: int | None = absent("how long a request may wait for others to form a batch")
    instance_count: int | None = absent("model instances per server")
    wire: Literal["uint8", "float32"] | None = absent("z as uint8 + per-channel scales, or as float")
    tensorrt_plan: bool | None = absent("also write a TensorRT-plan variant")
    threads_per_instance: int | None = absent("ONNX Runtime intra-op threads of each python-variant instance")


class ProfileDocument(StrictDocument):
    schema_version: schema_version(1)
    name: str
    description: str = ""
    backend: str = Field(description="the runtime backend that exports and runs the edge")
    default_precision: Precision
    threads: int = Field(ge=1)
    backend_options: BackendOptions = Field(default_factory=BackendOptions)
    parity: dict[Precision, ParityThresholds] = Field(description="one table per precision the target supports")
    budgets: Budgets
    serving: ServingTable | None = absent("how Triton serves the cloud half")

    @field_validator("parity", mode="before")
    @classmethod
    def _precision_keys(cls, parity: object) -> object:
        for precision in parity if isinstance(parity, dict) else ():
            if precision not in PRECISIONS:
                raise ValueError(f"[parity.{precision}] is not a precision; use {', '.join(PRECISIONS)}")
        return parity

    @model_validator(mode="after")
    def _default_precision_has_thresholds(self) -> ProfileDocument:
        if self.default_precision not in self.parity:
            raise ValueError(f"default_precision '{self.default_precision}' has no [parity.{self.default_precision}] table")
        return self
