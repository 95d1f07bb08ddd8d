"""Staging folders of atomic writes, named after the process that owns them, and removal of the
stale ones a killed export left behind.

A staging folder is `.<name>.sift-<pid>-<start>.<random>.tmp` (or `.old`, for a bundle moved aside
while its replacement is renamed in). The owner is in the name rather than in a file inside, so it
exists from the instant the folder does and never ends up hashed in a bundle. `<start>` is the
owner's start time (clock ticks since boot, from /proc): a recycled PID does not keep a dead
export's folder alive. Where /proc is missing it is 0 and only the PID is checked.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

STAGING_NAME = re.compile(r"^\.(?P<name>.+)\.sift-(?P<pid>\d+)-(?P<start>\d+)\.[^.]+\.(?P<kind>tmp|old)$")


def process_start_time(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot; 0 where /proc is not there; None when `pid`
    is not running (or is a zombie: killed, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        if not Path("/proc/self/stat").exists():
            return 0 if _pid_exists(pid) else None
        return None
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # field 22 of proc(5); fields[0] is field 3


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def owner_tag() -> str:
    pid = os.getpid()
    return f"sift-{pid}-{process_start_time(pid) or 0}"


def make_staging_dir(target: Path, kind: str = "tmp") -> Path:
    """A new, empty staging folder beside `target`, owned by this process."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{owner_tag()}.", suffix=f".{kind}", dir=target.parent))


def _owner_alive(pid: int, start: int) -> bool:
    now = process_start_time(pid)
    return now is not None and (start == 0 or now == 0 or now == start)


def remove_stale_staging(folder: Path) -> list[Path]:
    """Remove the staging folders in `folder` whose owner is dead; return them.

    Only folders named by `make_staging_dir` are touched, and never one whose owner still runs. A
    bundle that a killed export had moved aside (`.old`) goes back to its place when nothing took
    it; otherwise it is removed with the rest."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = STAGING_NAME.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        if _owner_alive(int(match["pid"]), int(match["start"])):
            continue
        moved_aside = entry / "x"
        target = entry.parent / match["name"]
        if match["kind"] == "old" and moved_aside.is_dir() and not target.exists():
            try:
                os.replace(moved_aside, target)
            except OSError:
                pass
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed
