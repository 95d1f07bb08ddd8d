"""The one timing loop: what it calls, in which order, with the garbage collector off, and what it
returns. No assertion on how long anything took."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from sift_deploy.backends.base import BytesLoader, Runner
from sift_deploy.bench.timing import start_runner, time_calls, time_runner, warm_up
from sift_deploy.errors import SiftError


class RecordingRunner(Runner):
    """A runner whose 'model' doubles its input and remembers which input each call got, and
    whether the garbage collector was on."""

    name = "recording"
    label = "recording runner"

    def _activate(self) -> None:
        self.seen: list[int] = []
        self.gc_on: list[bool] = []

    def _infer(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(int(x[0, 0]))
        self.gc_on.append(gc.isenabled())
        return x * 2


def _inputs(n: int) -> list[np.ndarray]:
    return [np.full((1, 1), i, np.float32) for i in range(n)]


def test_time_runner_activates_runs_once_warms_up_then_times_cycling_the_inputs():
    runner = RecordingRunner(BytesLoader(b"", "recording"))
    stages = []
    timing = time_runner(runner, _inputs(3), iterations=7, warmup=4, on_progress=lambda *s: stages.append(s))
    assert runner.is_active  # the caller deactivates it
    assert runner.seen == [0] + [0, 1, 2, 0] + [0, 1, 2, 0, 1, 2, 0]  # first inference, warm-up, timed
    assert runner.gc_on[:5] == [gc.isenabled()] * 5 and not any(runner.gc_on[5:])  # gc off in the timed loop only
    assert timing.load_ms >= 0 and timing.first_inference_ms >= 0
    assert timing.calls.wall_ns.shape == timing.calls.cpu_ns.shape == (7,)
    assert timing.calls.wall_ns.dtype == np.int64 and (timing.calls.wall_ns >= 0).all()
    assert stages[0] == ("warm-up", 0, 4) and ("warm-up", 4, 4) in stages and stages[-1] == ("timing", 7, 7)
    runner.deactivate()


def test_start_runner_refuses_an_active_runner():
    runner = RecordingRunner(BytesLoader(b"", "recording")).activate()
    with pytest.raises(SiftError, match="already active"):
        start_runner(runner, _inputs(1), warmup=0)


def test_the_timed_loop_restores_the_garbage_collector_after_an_error():
    def failing(x):
        if int(x[0, 0]) == 2:
            raise ValueError("the third call fails")

    assert gc.isenabled()
    with pytest.raises(ValueError):
        time_calls(failing, _inputs(5), iterations=5)
    assert gc.isenabled()
    gc.disable()
    try:
        time_calls(lambda x: x, _inputs(1), iterations=3)
        assert not gc.isenabled()  # one that was off stays off
    finally:
        gc.enable()


def test_warm_up_and_time_calls_take_any_callable():
    seen = []
    warm_up(seen.append, ["a", "b"], 3)
    calls = time_calls(seen.append, ["a", "b"], 2)
    assert seen == ["a", "b", "a", "a", "b"] and len(calls.wall_ns) == 2
