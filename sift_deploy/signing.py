"""ed25519 signatures over a bundle's manifest (through `cryptography`).

The manifest hashes every other file, so signing it signs the bundle. What is signed is the
manifest's canonical form (parsed, then serialised with sorted keys and no whitespace): an edit
of any value, including one that updates a file's hash to match a swapped file, breaks it, while
re-indenting the file does not. The signature lives in `manifest.sig` beside the manifest, which
does not list it among its hashed files.

Keys are PEM files: the private key PKCS#8 (mode 0600), the public key SubjectPublicKeyInfo in
`<private>.pub`. A key id (16 hex digits of the public key's sha256) names which key signed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from pathlib import Path

from .bundle import MANIFEST, SIGNATURE
from .documents import DocumentError, parse_document
from .documents.signature import ManifestSignature
from .errors import SiftError
from .fileio import atomic_file, check_writable

INSTALL_HINT = "pip install 'cryptography==50.0.2' (a core dependency of sift-deploy)"


def _serialization():
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:
        raise SiftError(f"signing needs the cryptography package ({exc}); {INSTALL_HINT}") from None
    return serialization


def canonical_manifest(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(public_key) -> str:
    serialization = _serialization()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_path(private_path: Path) -> Path:
    return Path(str(private_path) + ".pub")


def _write_private(path: Path, data: bytes) -> None:
    """Write through a 0600 temporary sibling (mkstemp's mode), so the key is never readable by others."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def generate_key_pair(private_path: Path, force: bool = False) -> dict:
    """Write a new ed25519 key pair: `private_path` (0600) and `private_path`.pub. Never overwrites
    either file without `force`."""
    serialization = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = Path(private_path)
    public_path = public_key_path(private_path)
    for path in (private_path, public_path):
        if path.is_dir():
            raise SiftError(f"{path} is a folder; give a file name for the key, such as signing.key")
        check_writable(path, force)
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    _write_private(private_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    with atomic_file(public_path, force=True) as tmp:
        tmp.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return {"private_key": str(private_path), "public_key": str(public_path), "key_id": key_id(key.public_key())}


def _read_key_file(path: Path, what: str) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise SiftError(f"{what} {path} does not exist; create a key pair with `sift-deploy keygen`")
    return path.read_bytes()


def load_private_key(path: Path):
    serialization = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SiftError(f"{path} is not an unencrypted PEM private key ({exc}); use the key `sift-deploy keygen` wrote") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SiftError(f"{path} is not an ed25519 private key; make one with `sift-deploy keygen`")
    return key


def load_public_key(path: Path):
    serialization = _serialization()
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_file(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SiftError(f"{path} is not a PEM public key ({exc}); pass the .pub file `sift-deploy keygen` wrote") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SiftError(f"{path} is not an ed25519 public key; pass the .pub file `sift-deploy keygen` wrote")
    return key


def _manifest_on_disk(bundle_dir: Path) -> dict:
    return json.loads((Path(bundle_dir) / MANIFEST).read_text())


def sign_bundle(bundle_dir: Path, private_key) -> dict:
    """Write `manifest.sig` for the manifest as it is on disk; return the signature document."""
    signature = private_key.sign(canonical_manifest(_manifest_on_disk(bundle_dir)))
    document = {"schema_version": 1, "algorithm": "ed25519", "key_id": key_id(private_key.public_key()),
                "signed": "canonical-json", "signature": base64.b64encode(signature).decode("ascii")}
    parse_document(ManifestSignature, document, SIGNATURE)
    (Path(bundle_dir) / SIGNATURE).write_text(json.dumps(document, indent=2) + "\n")
    return document


def read_signature(bundle_dir: Path) -> dict | None:
    """The bundle's signature document; None when it is unsigned. Raises DocumentError when unreadable."""
    path = Path(bundle_dir) / SIGNATURE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DocumentError(f"{path} is not JSON ({exc})") from None
    parse_document(ManifestSignature, document, str(path))
    return document


def check_signature(bundle_dir: Path, public_key) -> dict:
    """{"status": "valid" | "unsigned" | "invalid", "key_id", "problem"}: does the manifest on disk
    carry a valid signature by `public_key`?"""
    from cryptography.exceptions import InvalidSignature

    expected = key_id(public_key)
    try:
        document = read_signature(bundle_dir)
    except DocumentError as exc:
        return {"status": "invalid", "key_id": expected, "problem": f"{SIGNATURE} is unreadable: {exc}"}
    if document is None:
        return {"status": "unsigned", "key_id": expected,
                "problem": f"the bundle has no {SIGNATURE}, and a signature by key {expected} is required"}
    if document["key_id"] != expected:
        return {"status": "invalid", "key_id": expected,
                "problem": f"{SIGNATURE} is by key {document['key_id']}, not by the given key {expected}"}
    try:
        public_key.verify(base64.b64decode(document["signature"], validate=True),
                          canonical_manifest(_manifest_on_disk(bundle_dir)))
    except (InvalidSignature, ValueError):
        return {"status": "invalid", "key_id": expected,
                "problem": f"{MANIFEST} was changed after it was signed by key {expected} (the signature does not match)"}
    return {"status": "valid", "key_id": expected, "problem": None}
