"""Bundles: a folder with the exported edge, the float cloud, parity reference data and
`manifest.json`. Written atomically (see fileio.atomic_dir); every file is hashed in the manifest
and `verify_files` names any file that was changed, removed or added. numpy-free and torch-free.
"""

from __future__ import annotations

import json
from pathlib import Path

from .documents import DocumentError, parse_document
from .documents.manifest import Manifest
from .errors import SiftError
from .fileio import sha256_file

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"  # signs the manifest, so the manifest cannot list it (see signing.py)
PARITY_REFERENCE = "parity/reference.npz"  # held-out images + float reference features, for verify/bench


def hash_files(bundle_dir: Path) -> dict[str, dict]:
    """sha256 and size of every file in the bundle except the manifest and its signature, keyed by relative path."""
    out = {}
    for path in sorted(Path(bundle_dir).rglob("*")):
        rel = path.relative_to(bundle_dir).as_posix()
        if path.is_file() and path.name != MANIFEST and rel != SIGNATURE:
            out[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return out


def write_manifest(bundle_dir: Path, manifest: dict) -> dict:
    manifest = {**manifest, "schema_version": SCHEMA_VERSION, "files": hash_files(bundle_dir)}
    (Path(bundle_dir) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return manifest


def read_manifest(bundle_dir: Path) -> dict:
    """The manifest as a plain dict, once it has validated as a `Manifest`."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.exists():
        raise SiftError(f"bundle {bundle_dir} does not exist; create one with `sift-deploy export`")
    if not bundle_dir.is_dir():
        raise SiftError(f"{bundle_dir} is a file; a bundle is the folder that `sift-deploy export` writes")
    path = bundle_dir / MANIFEST
    if not path.exists():
        inner = sorted(p.name for p in bundle_dir.iterdir() if (p / MANIFEST).is_file())
        if inner:
            shown = ", ".join(inner[:3]) + (f" and {len(inner) - 3} more" if len(inner) > 3 else "")
            raise SiftError(f"{bundle_dir} is a folder of bundles ({shown}); give one of them, "
                            f"e.g. {bundle_dir / inner[0]}")
        raise SiftError(f"{bundle_dir} has no {MANIFEST}; it is not a complete sift-deploy bundle, re-export it")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SiftError(f"{path} is corrupt ({exc}); re-export the bundle") from exc
    try:
        parse_document(Manifest, manifest, str(path))
    except DocumentError as exc:
        if exc.kind == "missing":
            raise DocumentError(f"{path} has a missing or malformed entry: it lacks '{exc.field}'; re-export the bundle",
                                exc.field, exc.kind) from None
        raise DocumentError(f"{exc}; re-export the bundle", exc.field, exc.kind) from None
    return manifest


def verify_files(bundle_dir: Path, manifest: dict) -> list[str]:
    """Problems found, one sentence each; empty when every file matches its recorded hash."""
    actual = hash_files(bundle_dir)
    expected = manifest["files"]
    problems = []
    for rel, info in expected.items():
        if rel not in actual:
            problems.append(f"{rel} is missing")
        elif actual[rel]["sha256"] != info["sha256"]:
            problems.append(f"{rel} was modified (sha256 differs from the manifest)")
    for rel in actual:
        if rel not in expected:
            problems.append(f"{rel} is not listed in the manifest")
    for role in ("edge_file", "cloud_file"):  # the files a runner will load must be among the hashed ones
        name = manifest.get(role)
        if name is not None and name not in expected:
            problems.append(f"the manifest's {role} {name} is not among its hashed files")
    return problems


def require_intact(bundle_dir: Path) -> dict:
    """Read the manifest and refuse a bundle whose files do not match it."""
    manifest = read_manifest(bundle_dir)
    problems = verify_files(bundle_dir, manifest)
    if problems:
        raise SiftError(f"bundle {bundle_dir} failed verification: {'; '.join(problems)}; re-export it")
    return manifest
