"""The `sift-deploy` command line. Each command parses options, calls one function, renders."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from . import __version__
from .errors import SiftError

app = typer.Typer(
    name="sift-deploy",
    help="Split, quantize and export SiftFunnel models for edge devices, and prove the deployed artifact keeps "
         "accuracy and privacy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        console.print(f"sift-deploy {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """sift-deploy: SiftFunnel split inference from checkpoint to device."""


@app.command()
def train(
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint to write (.safetensors); metrics go beside it.")] = Path("checkpoints/siftfunnel-cnn.safetensors"),
    arch: Annotated[str, typer.Option(help="Architecture: siftfunnel-cnn, siftfunnel-vgg16bn, siftfunnel-resnet18, or a plain-* twin.")] = "siftfunnel-cnn",
    defense: Annotated[str, typer.Option(help="siftfunnel: the SiftFunnel objective; none: plain cross-entropy (for plain-* twins).")] = "siftfunnel",
    data_dir: Annotated[Optional[Path], typer.Option(help="IDX folder, official .npz, or class-folder images (default: Debian's Fashion-MNIST).")] = None,
    input_size: Annotated[int, typer.Option(help="Model input side: 32 or 64.")] = 32,
    epochs: Annotated[float, typer.Option(help="Passes over the train split (fractions allowed).")] = 6.0,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate at the start of the cosine decay.")] = 1e-3,
    alpha: Annotated[float, typer.Option(help="Weight of the label-smoothed KL task loss (official: 5).")] = 5.0,
    beta: Annotated[float, typer.Option(help="Weight of dCor^2(x, z) (official: 2).")] = 2.0,
    gamma: Annotated[float, typer.Option(help="Weight of the Pearson channel-decorrelation penalty (official: 2).")] = 2.0,
    l1: Annotated[float, typer.Option(help="Weight of mean|z| (official: 0.03).")] = 0.03,
    smoothing: Annotated[float, typer.Option(help="Label smoothing s (official: 0.25).")] = 0.25,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batch order and flips.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/aux/test split.")] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads (0: all cores).")] = 0,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (smoke tests).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing checkpoint.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a SiftFunnel model (or its unprotected twin) and write a checkpoint plus metrics JSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .train.loop import Recipe
    from .train.objective import ObjectiveWeights
    from .train.run import run_training

    if epochs <= 0 or batch_size < 2 or lr <= 0:
        fail("--epochs and --lr must be positive and --batch-size at least 2")
    recipe = Recipe(arch=arch, defense=defense, epochs=epochs, batch_size=batch_size, lr=lr, flip=flip, seed=seed,
                    threads=threads, max_steps=max_steps,
                    weights=ObjectiveWeights(alpha=alpha, beta=beta, gamma=gamma, l1=l1, smoothing=smoothing))
    progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=json_out)
    # rich's live bar draws nothing into a log file: there, print one plain line per epoch instead.
    plain_log = not err_console.is_terminal
    epoch_sums: dict[str, float] = {}
    epoch_state = {"steps": 0, "done": 0, "started": time.perf_counter()}
    with progress:
        task = progress.add_task("train", total=None, info="loading data")

        def on_step(report) -> None:
            terms = " ".join(f"{k} {v:.3f}" for k, v in report.terms.items())
            progress.update(task, total=report.total_steps, completed=report.step,
                            info=f"ep {report.epoch:.2f} loss {report.loss:.3f} {terms} acc {report.train_acc:.3f}")
            if not plain_log:
                return
            for key, value in {"loss": report.loss, **report.terms}.items():
                epoch_sums[key] = epoch_sums.get(key, 0.0) + value
            epoch_state["steps"] += 1
            if int(report.epoch + 1e-9) > epoch_state["done"] or report.step == report.total_steps:
                epoch_state["done"] = int(report.epoch + 1e-9)
                means = " ".join(f"{k} {v / epoch_state['steps']:.4f}" for k, v in epoch_sums.items())
                elapsed = time.perf_counter() - epoch_state["started"]
                print(f"epoch {report.epoch:.2f}/{recipe.epochs:g} step {report.step}/{report.total_steps} {means} "
                      f"train_acc {report.train_acc:.4f} elapsed {elapsed:.0f}s", file=sys.stderr, flush=True)
                epoch_sums.clear()
                epoch_state["steps"] = 0

        try:
            result = run_training(recipe, output, data_dir, input_size, split_seed, force, on_step)
        except SiftError as exc:
            progress.stop()
            fail(str(exc))
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        console.print(f"wrote {result['checkpoint']} - test accuracy {result['test_accuracy']:.2%} "
                      f"on {result['test_images']} images after {result['epochs']:.2f} epochs ({result['train_seconds']} s)")


@app.command("inspect")
def inspect_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(help="A .safetensors checkpoint, or an official .pth with --arch (default: the shipped reference).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of an official .pth checkpoint (project checkpoints record it).")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="Input side of an official checkpoint whose weights fit both 32 and 64.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
) -> None:
    """Show a checkpoint's split: transmitted shape and bytes, edge/cloud params and MACs, and its metadata."""
    from .inspect import inspect_checkpoint, render_inspection

    try:
        doc = inspect_checkpoint(checkpoint, arch=arch, input_size=input_size)
    except SiftError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps(doc, indent=2))
    else:
        for table in render_inspection(doc):
            console.print(table)
            console.print()


def run() -> None:
    """Console-script entry point."""
    try:
        app()
    except SiftError as exc:  # errors raised outside a command's own handling
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
