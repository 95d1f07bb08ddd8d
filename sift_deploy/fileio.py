"""Atomic file and directory writes: write to a temporary sibling, then rename into place."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import SiftError
from .staging import make_staging_dir, remove_stale_staging


def _default_mode(base: int) -> int:
    """`base` less the process umask: the mode open()/mkdir() would give (mkstemp/mkdtemp give 0600/0700)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def check_writable(path: Path, force: bool) -> None:
    """Refuse, before any work, a path that cannot be written: one that exists (without --force),
    one under a file, and one whose nearest existing folder refuses a new file (read-only file
    system, /proc, no permission). The probe creates and removes a real file there, because
    permission bits alone do not tell (root ignores them; a read-only mount ignores them)."""
    path = Path(path)
    if path.exists() and not force:
        raise SiftError(f"{path} already exists; pass --force to overwrite it or choose another path")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is None:
        return
    if not parent.is_dir():
        raise SiftError(f"cannot write {path}: {parent} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".sift-write-probe.", dir=parent)
    except OSError as exc:
        raise SiftError(f"cannot write {path}: {parent} does not accept new files ({exc.strerror or exc}); "
                        f"choose another path") from None
    os.close(fd)
    os.unlink(probe)


@contextmanager
def atomic_file(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path in the same folder; on success rename it onto `path`."""
    path = Path(path)
    check_writable(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, _default_mode(0o666))
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def atomic_dir(path: Path, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; on success it replaces `path` in one rename.

    An existing `path` is moved aside first and deleted only after the new one is in place, so a
    failure at any point leaves either the old folder or the new one, never a mix.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SiftError(f"output path {path} is a file; choose a folder path")
    check_writable(path, force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SiftError(f"cannot create the folder {path.parent} ({exc.strerror or exc}); choose another path") from None
    remove_stale_staging(path.parent)
    tmp = make_staging_dir(path)
    old = None
    try:
        yield tmp
        os.chmod(tmp, _default_mode(0o777))
        if path.exists():
            old = make_staging_dir(path, kind="old")
            os.replace(path, old / "x")
        os.replace(tmp, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old / "x", path)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
