"""`manifest.sig` of a signed bundle, as `sift_deploy/signing.py` writes it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .base import StrictDocument, schema_version


class ManifestSignature(StrictDocument):
    schema_version: schema_version(1)
    algorithm: Literal["ed25519"]
    key_id: str = Field(description="first 16 hex digits of the sha256 of the raw 32-byte public key")
    signed: Literal["canonical-json"] = Field(
        description="what was signed: manifest.json parsed and re-serialised with sorted keys, no whitespace, UTF-8")
    signature: str = Field(description="the 64-byte ed25519 signature, base64")
