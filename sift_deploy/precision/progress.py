"""The progress bar of `export --precision auto`: the candidate being measured and the last one's
accuracy drop and leakage increase (the CLI only opens it)."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextmanager
def search_progress(console: Console, disable: bool = False):
    """Yields (on_stage, on_candidate) for `export_bundle`. Off a terminal the live bar is off (rich
    would print only its last state, at the end) and each candidate gets one plain line instead."""
    plain_log = not console.is_terminal and not disable
    disable = disable or not console.is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, disable=disable)
    task = progress.add_task("export", total=None, info="")

    def on_stage(stage: str) -> None:
        progress.update(task, description=stage)

    def on_candidate(what: str, done: int, planned: int, last) -> None:
        figures = "" if last is None else (f"previous: drop {last.accuracy_drop_points:.2f} pt, leak "
                                           f"{last.leakage_increase_ssim:+.4f} SSIM, {len(last.int8_layers)} int8")
        progress.update(task, description="auto precision", completed=done, total=planned,
                        info=f"{what[:48]}  {figures}")
        if plain_log:
            line = (f"search done: {done} candidates  {figures}" if what == "done"
                    else f"candidate {done + 1}/{planned}: {what}  {figures}")
            console.print(line, highlight=False, soft_wrap=True)

    with progress:
        yield on_stage, on_candidate
