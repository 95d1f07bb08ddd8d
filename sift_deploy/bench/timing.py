"""The one timing loop in sift-deploy: activate, first inference, warm-up, then one clock pair around
each call with the garbage collector off.

`sift-deploy bench`, the ONNX Runtime exporter's quick int8-vs-fp32 check and
benchmarks/bench_runtimes.py all time through here, so every latency the tree reports was taken
the same way. Inputs are cycled: call i gets `inputs[i % len(inputs)]`.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

TIMER = "time.perf_counter_ns around each infer call, gc disabled in the timed loop"
PROGRESS_STEPS = 20

ProgressFn = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    pass


@dataclass
class CallTimes:
    wall_ns: np.ndarray  # perf_counter_ns per call
    cpu_ns: np.ndarray  # the calling thread's CPU time per call (thread_time_ns): what a 1-thread call costs
    #                     even when another process shares the core


@dataclass
class RunnerTiming:
    load_ms: float  # activate(): session / interpreter / engine creation
    first_inference_ms: float
    calls: CallTimes


def warm_up(call: Callable[[Any], Any], inputs: Sequence, count: int, on_progress: ProgressFn | None = None) -> None:
    progress = on_progress or _no_progress
    progress("warm-up", 0, count)
    for i in range(count):
        call(inputs[i % len(inputs)])
    progress("warm-up", count, count)


def time_calls(call: Callable[[Any], Any], inputs: Sequence, iterations: int,
               on_progress: ProgressFn | None = None) -> CallTimes:
    """`iterations` timed calls. The thread clock is read outside the wall-clock pair, so it adds
    nothing to the wall time."""
    progress = on_progress or _no_progress
    wall = np.empty(iterations, dtype=np.int64)
    cpu = np.empty(iterations, dtype=np.int64)
    clock, thread_clock, count = time.perf_counter_ns, time.thread_time_ns, len(inputs)
    chunk = max(1, iterations // PROGRESS_STEPS)  # progress is reported between chunks, never inside the timed pair
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        done = 0
        while done < iterations:
            end = min(iterations, done + chunk)
            for i in range(done, end):
                x = inputs[i % count]
                c0 = thread_clock()
                t0 = clock()
                call(x)
                wall[i] = clock() - t0
                cpu[i] = thread_clock() - c0
            done = end
            progress("timing", done, iterations)
    finally:
        if gc_was_enabled:
            gc.enable()
    return CallTimes(wall_ns=wall, cpu_ns=cpu)


def start_runner(runner, inputs: Sequence[np.ndarray], warmup: int,
                 on_progress: ProgressFn | None = None) -> tuple[float, float]:
    """Activate an inactive runner, run it once, warm it up: (load ms, first inference ms). It stays active."""
    started = time.perf_counter_ns()
    runner.activate()
    load_ms = (time.perf_counter_ns() - started) / 1e6
    started = time.perf_counter_ns()
    runner.infer(inputs[0])
    first_ms = (time.perf_counter_ns() - started) / 1e6
    warm_up(runner.infer, inputs, warmup, on_progress)
    return load_ms, first_ms


def time_runner(runner, inputs: Sequence[np.ndarray], iterations: int, warmup: int,
                on_progress: ProgressFn | None = None) -> RunnerTiming:
    """start_runner, then the timed loop. The runner stays active: the caller deactivates it."""
    load_ms, first_ms = start_runner(runner, inputs, warmup, on_progress)
    return RunnerTiming(load_ms, first_ms, time_calls(runner.infer, inputs, iterations, on_progress))


def time_imports(modules: Sequence[Sequence[str]]) -> float:
    """ms to import a runtime: for each group of alternatives, the first that imports. A missing
    runtime is not an error here: the runner reports it with its install hint."""
    import importlib

    started = time.perf_counter_ns()
    for alternatives in modules:
        for name in alternatives:
            try:
                importlib.import_module(name)
                break
            except Exception:  # noqa: BLE001 - a broken runtime install raises more than ImportError
                continue
    return (time.perf_counter_ns() - started) / 1e6
