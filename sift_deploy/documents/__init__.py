"""Typed documents: every file sift-deploy writes or reads as data (manifest, target profile,
bounds, bench, check and advise reports) is a pydantic v2 model with `schema_version` that rejects
unknown keys. Their JSON Schemas are committed under docs/schemas/ (see `schemas.py`)."""

from __future__ import annotations

from .base import Document, DocumentError, parse_document

# name -> "module:Class" (lazy, so that reading a profile does not import the check report's models)
DOCUMENTS = {
    "manifest": "sift_deploy.documents.manifest:Manifest",
    "manifest-signature": "sift_deploy.documents.signature:ManifestSignature",
    "profile": "sift_deploy.documents.profile:ProfileDocument",
    "bounds": "sift_deploy.documents.bounds:BoundsDocument",
    "bench-report": "sift_deploy.documents.bench_report:BenchReport",
    "check-report": "sift_deploy.documents.check_report:CheckReport",
    "advise-report": "sift_deploy.documents.advise_report:AdviseReport",
}

__all__ = ["DOCUMENTS", "Document", "DocumentError", "parse_document"]
