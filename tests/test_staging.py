"""sift_deploy/staging.py: a killed export's staging folder is removed by the next write into the
same folder; a live one (or one whose owner is unknown) never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sift_deploy.fileio import atomic_dir
from sift_deploy.staging import STAGING_NAME, owner_tag, process_start_time, remove_stale_staging

REPO = Path(__file__).resolve().parents[1]


def staging_folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if STAGING_NAME.match(p.name))


def spawn(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for(predicate, process: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        if process.poll() is not None:
            pytest.fail(f"the subprocess ended (rc {process.returncode}) first: {process.stderr.read()[-2000:]}")
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"nothing after {timeout} s")


def test_a_killed_export_leaves_staging_that_the_next_write_removes(tmp_path):
    """kill -9 a real export once its staging folder holds files; the next atomic write into the
    same parent (what every export does) removes it and still writes its own output."""
    export = spawn(f"""
        from sift_deploy.export import export_bundle
        export_bundle(None, "x86", "fp32", output={str(tmp_path / "bundle")!r}, calib_count=64, parity_on_test_split=False)
    """)
    staged = wait_for(lambda: [p for p in staging_folders(tmp_path) if any(p.iterdir())], export, timeout=400)
    export.send_signal(signal.SIGKILL)
    export.wait()
    assert staging_folders(tmp_path) == staged and not (tmp_path / "bundle").exists()  # partial files left behind
    assert STAGING_NAME.match(staged[0].name)["pid"] == str(export.pid)

    with atomic_dir(tmp_path / "other") as tmp:
        (tmp / "file").write_text("new output")
    assert staging_folders(tmp_path) == []
    assert (tmp_path / "other" / "file").read_text() == "new output"


def test_a_live_owners_staging_is_kept(tmp_path):
    holder = spawn(f"""
        import time
        from pathlib import Path
        from sift_deploy.fileio import atomic_dir
        with atomic_dir(Path({str(tmp_path / "slow")!r})) as tmp:
            (tmp / "partial").write_text("still being written")
            time.sleep(120)
    """)
    try:
        live = wait_for(lambda: [p for p in staging_folders(tmp_path) if (p / "partial").exists()], holder, timeout=60)
        with atomic_dir(tmp_path / "fast") as tmp:
            (tmp / "file").write_text("x")
        assert staging_folders(tmp_path) == live
    finally:
        holder.kill()
        holder.wait()


def test_a_recycled_pid_does_not_keep_a_dead_owners_staging(tmp_path):
    """Same PID as a live process (this one), but another start time: its owner is gone."""
    pid = os.getpid()
    stale = tmp_path / f".bundle.sift-{pid}-{process_start_time(pid) + 1}.abc123.tmp"
    stale.mkdir()
    live = tmp_path / f".bundle.{owner_tag()}.def456.tmp"
    live.mkdir()
    assert remove_stale_staging(tmp_path) == [stale]
    assert staging_folders(tmp_path) == [live]


def test_folders_without_a_recorded_owner_are_left_alone(tmp_path):
    for name in (".bundle.k2j4h1.tmp", "bundle.sift-1-1.x.tmp", ".notes"):
        (tmp_path / name).mkdir()
    (tmp_path / ".bundle.sift-999999999-1.abc.tmp").write_text("a file, not a staging folder")
    assert remove_stale_staging(tmp_path) == []
    assert len(list(tmp_path.iterdir())) == 4


def test_a_bundle_moved_aside_by_a_killed_export_goes_back(tmp_path):
    """Killed between moving the old bundle aside and renaming the new one in: the old one returns."""
    aside = tmp_path / ".bundle.sift-999999999-1.abc.old"
    (aside / "x").mkdir(parents=True)
    (aside / "x" / "manifest.json").write_text("{}")
    assert remove_stale_staging(tmp_path) == [aside]
    assert (tmp_path / "bundle" / "manifest.json").read_text() == "{}"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc: start times are not available here")
def test_a_reaped_process_has_no_start_time():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_start_time(child.pid) is None
    assert process_start_time(os.getpid()) > 0
