"""StageProgress in a log (not a terminal): one line once a stage has run for a moment, then one at
every tenth done; a stage that fails at once (a refused input) prints nothing."""

from __future__ import annotations

import io
import time

from sift_deploy import stage_progress
from sift_deploy.stage_progress import StageProgress


def test_plain_lines_in_a_log(monkeypatch):
    monkeypatch.setattr(stage_progress, "STAGE_LINE_DELAY_S", 0.05)
    log = io.StringIO()
    with StageProgress("export", log) as progress:
        progress("loading checkpoint")
        time.sleep(0.2)
        progress("running the float model on 100 images", 0, 100)
        time.sleep(0.2)
        for done in range(5, 101, 5):
            progress("running the float model on 100 images", done, 100)
        progress("exporting the float cloud", 0, 0)
        time.sleep(0.2)
    lines = log.getvalue().splitlines()
    assert lines[:2] == ["export: loading checkpoint", "export: running the float model on 100 images"]
    counted = [line.split("images ", 1)[1] for line in lines[2:-1]]
    assert [c.split(",")[0] for c in counted] == [f"{n}/100" for n in range(10, 101, 10)]
    assert all(c.endswith(" s left") for c in counted[:-1]) and counted[-1] == "100/100"  # an ETA until done
    assert lines[-1] == "export: exporting the float cloud"


def test_a_stage_that_ends_at_once_prints_nothing():
    log = io.StringIO()
    try:
        with StageProgress("bench", log) as progress:
            progress("verifying the bundle")
            raise ValueError("refused")
    except ValueError:
        pass
    time.sleep(stage_progress.STAGE_LINE_DELAY_S + 0.2)
    assert log.getvalue() == ""


def test_disabled_prints_nothing():
    log = io.StringIO()
    with StageProgress("bench", log, disable=True) as progress:
        progress("timing", 5, 10)
    assert log.getvalue() == ""
