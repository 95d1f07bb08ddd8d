"""Stage and progress of a long command, for people and for CI logs.

On a terminal: a rich progress bar per stage. Elsewhere (a CI log, a pipe) rich's live display
draws nothing until the end, so each stage prints plain lines on stderr instead:
`export: checking parity on 256 images` once it has run for a second or counted its first step (a
refusal of bad input is then the only line), then `... 30/100, about 12 s left` at every tenth done.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TextIO

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

ProgressFn = Callable[[str, int, int], None]
STEPS_PER_STAGE = 10  # plain lines per stage with a known total
STAGE_LINE_DELAY_S = 1.0  # a stage that ends (or fails) sooner prints no line


class StageProgress:
    """Call it as on_progress(stage, done, total); total 0 means "no count, just the stage"."""

    def __init__(self, command: str, stream: TextIO | None = None, disable: bool = False):
        self.command = command
        self.console = Console(file=stream, stderr=stream is None)
        self.disable = disable
        self.plain = not self.console.is_terminal
        self._bar = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                             disable=disable or self.plain)
        self._tasks: dict[str, int] = {}
        self._printed_step: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._announced: set[str] = set()
        self._pending: threading.Timer | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> "StageProgress":
        self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self._cancel_pending()
        self._bar.stop()

    def __call__(self, stage: str, done: int = 0, total: int = 0) -> None:
        if self.disable:
            return
        if self.plain:
            self._line(stage, done, total)
            return
        if stage not in self._tasks:
            for task in self._tasks.values():  # a new stage means the earlier ones are done
                self._bar.update(task, visible=False)
            self._tasks[stage] = self._bar.add_task(stage, total=total or None)
        self._bar.update(self._tasks[stage], completed=done, total=total or None)

    def _line(self, stage: str, done: int, total: int) -> None:
        if stage not in self._printed_step:
            self._printed_step[stage] = 0
            self._started[stage] = time.monotonic()
            self._cancel_pending()
            self._pending = threading.Timer(STAGE_LINE_DELAY_S, self._announce, (stage,))
            self._pending.daemon = True
            self._pending.start()
        if total <= 1 or done <= 0:
            return
        if stage not in self._announced:  # work under way: no longer a possible refusal
            self._cancel_pending()
            self._announce(stage)
        step = min(STEPS_PER_STAGE, done * STEPS_PER_STAGE // total)
        if step > self._printed_step[stage]:
            self._printed_step[stage] = step
            elapsed = time.monotonic() - self._started[stage]
            left = f", about {elapsed * (total - done) / done:.0f} s left" if done < total else ""
            self._print(f"{stage} {done}/{total}{left}")

    def _announce(self, stage: str) -> None:
        with self._lock:  # the timer thread and a first count may race
            if stage in self._announced:
                return
            self._announced.add(stage)
        self._print(stage)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _print(self, text: str) -> None:
        print(f"{self.command}: {text}", file=self.console.file, flush=True)
