"""StageProgress in a log (not a terminal): one line when a stage starts, then one at every tenth done."""

from __future__ import annotations

import io

from sift_deploy.stage_progress import StageProgress


def test_plain_lines_in_a_log():
    log = io.StringIO()
    with StageProgress("export", log) as progress:
        progress("loading checkpoint")
        for done in range(0, 101, 5):
            progress("running the float model on 100 images", done, 100)
        progress("exporting the float cloud", 0, 0)
    lines = log.getvalue().splitlines()
    assert lines[:2] == ["export: loading checkpoint", "export: running the float model on 100 images"]
    counted = [line.rsplit(" ", 1)[1] for line in lines[2:-1]]
    assert counted == [f"{n}/100" for n in range(10, 101, 10)]
    assert lines[-1] == "export: exporting the float cloud"


def test_disabled_prints_nothing():
    log = io.StringIO()
    with StageProgress("bench", log, disable=True) as progress:
        progress("timing", 5, 10)
    assert log.getvalue() == ""
