"""The bounds of `sift-deploy check` (sift_deploy/default-bounds.toml and users' own): what the
deployed artifact may lose in accuracy and gain in leakage against the float model."""

from __future__ import annotations

from pydantic import Field

from .base import StrictDocument, absent, schema_version


class AccuracyBounds(StrictDocument):
    max_drop_points: float = Field(description="float top-1 minus deployed top-1 on the test split, in points")
    max_wire_int8_drop_points: float | None = absent("the same with int8 features on the wire")


class LeakageBounds(StrictDocument):
    max_ssim_increase: float = Field(description="upper 95% bound of the paired per-image SSIM increase, deployed - float")
    max_psnr_increase_db: float | None = absent()
    max_mi_increase_nats: float | None = absent("MINE estimate of I(x; z), deployed - float")
    max_ssim: float | None = absent("absolute cap on the deployed artifact's SSIM")
    max_psnr_db: float | None = absent()
    max_mi_nats: float | None = absent()


class AttackBounds(StrictDocument):
    min_twin_ssim: float = Field(description="mean SSIM the attack must reach against the unprotected twin")


class SearchBounds(StrictDocument):
    max_iterations: int = Field(default=12, ge=1, description="verified reverts of `export --precision auto`")


class BoundsDocument(StrictDocument):
    schema_version: schema_version(1)
    accuracy: AccuracyBounds
    leakage: LeakageBounds
    attack: AttackBounds
    search: SearchBounds = Field(default_factory=SearchBounds,
                                 description="`export --precision auto` (its accuracy and leakage bounds are the ones above)")
