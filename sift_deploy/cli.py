"""The `sift-deploy` command line. Each command parses options, calls one function, renders."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__
from .errors import SiftError
from .extras import missing_extra_message, needs_extra, require_extra

app = typer.Typer(
    name="sift-deploy",
    help="Split, quantize and export SiftFunnel models for edge devices, and prove the deployed artifact keeps "
         "accuracy and privacy.",
    epilog="[bold]Workflow:[/] [cyan]inspect[/] a checkpoint (or [cyan]train[/] one) -> pick a device in "
           "[cyan]targets[/] -> [cyan]export --target rpi[/] writes a bundle -> [cyan]verify BUNDLE[/] and "
           "[cyan]bench BUNDLE[/] on the device -> [cyan]check BUNDLE[/] in CI (accuracy and privacy gate).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def stand_in_choices() -> str:
    """`--runtime` values, from the backends' stand-in declarations."""
    from .backends import stand_in_runtimes

    return "; ".join(f"{runtime} (for {', '.join(owners)} bundles)" for runtime, owners in stand_in_runtimes().items())


def verdict(passed: bool, json_out: bool, why_pass: str, why_fail: str) -> None:
    """The last line of export and verify: PASS or FAIL (on stderr when stdout carries JSON); exit 1 on FAIL."""
    line = f"[bold green]PASS[/] {escape(why_pass)}" if passed else f"[bold red]FAIL[/] {escape(why_fail)}"
    (err_console if json_out else console).print(line, highlight=False, soft_wrap=True)
    if not passed:
        raise typer.Exit(1)


def warn(message: str) -> None:
    err_console.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


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
    arch: Annotated[str, typer.Option(help="Architecture: siftfunnel-cnn, siftfunnel-vgg16bn, siftfunnel-resnet18, a plain-* twin, or ae-cnn (the autoencoder-bottleneck baseline).")] = "siftfunnel-cnn",
    defense: Annotated[str, typer.Option(help="siftfunnel: the SiftFunnel objective (siftfunnel-* only); nopeek: cross-entropy + beta * dCor^2(x, z), the NoPeek baseline (not on siftfunnel-*); none: plain cross-entropy (twins, ae-cnn).")] = "siftfunnel",
    data_dir: Annotated[Optional[Path], typer.Option(help="IDX folder, official .npz, or class-folder images (default: Debian's Fashion-MNIST).")] = None,
    input_size: Annotated[int, typer.Option(help="Model input side: 32 or 64.")] = 32,
    epochs: Annotated[float, typer.Option(help="Passes over the train split (fractions allowed).")] = 6.0,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate at the start of the cosine decay.")] = 1e-3,
    alpha: Annotated[float, typer.Option(help="Weight of the label-smoothed KL task loss (official: 5).")] = 5.0,
    beta: Annotated[float, typer.Option(help="Weight of dCor^2(x, z) (official: 2); with --defense nopeek its only weight.")] = 2.0,
    gamma: Annotated[float, typer.Option(help="Weight of the Pearson channel-decorrelation penalty (official: 2).")] = 2.0,
    l1: Annotated[float, typer.Option(help="Weight of mean|z| (official: 0.03).")] = 0.03,
    smoothing: Annotated[float, typer.Option(help="Label smoothing s (official: 0.25).")] = 0.25,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips (off by default: wrong for digits and text).")] = False,
    mean: Annotated[Optional[str], typer.Option(help="Per-channel input mean, e.g. 0.4914,0.4822,0.4465 (default: measured on the train split).")] = None,
    std: Annotated[Optional[str], typer.Option(help="Per-channel input std (default: measured on the train split).")] = None,
    normalization: Annotated[Optional[str], typer.Option(help="Named mean/std instead: cifar10, facescrub or half (0.5/0.5).")] = None,
    aux_split: Annotated[float, typer.Option(help="The attacker's aux split: a fraction (0.3) or a count (3000) of the training images.")] = 1 / 6,
    test_split: Annotated[Optional[float], typer.Option(help="For data without its own test set: a fraction or count for the test split (default: as --aux-split).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, batch order and flips.")] = 0,
    split_seed: Annotated[int, typer.Option(help="Seed of the train/aux/test split.")] = 0,
    threads: Annotated[int, typer.Option(help="Torch threads (0: all cores).")] = 0,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps (smoke tests).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from the state saved beside the output (OUTPUT.resume.pt, written at each epoch's end); the same options are required.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an existing checkpoint.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train a SiftFunnel model (or its unprotected twin, or a baseline defence) and write a checkpoint plus metrics JSON."""
    try:
        require_extra("train")
    except SiftError as exc:
        fail(str(exc))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .stage_progress import StageProgress
    from .data.preprocess import normalization_from_options
    from .train.loop import Recipe
    from .train.objective import ObjectiveWeights
    from .train.resume import state_path_for
    from .train.run import run_training

    if epochs <= 0 or batch_size < 2 or lr <= 0:
        fail("--epochs and --lr must be positive and --batch-size at least 2")
    try:
        norm = normalization_from_options(mean, std, normalization)
    except SiftError as exc:
        fail(str(exc))
    recipe = Recipe(arch=arch, defense=defense, epochs=epochs, batch_size=batch_size, lr=lr, flip=flip, seed=seed,
                    threads=threads, max_steps=max_steps,
                    weights=ObjectiveWeights(alpha=alpha, beta=beta, gamma=gamma, l1=l1, smoothing=smoothing))
    # rich's live bar draws nothing into a log file (only its last state, at the end): there, print one plain
    # line per epoch instead.
    plain_log = not err_console.is_terminal
    log_lines = StageProgress("train", disable=json_out or not plain_log)  # plain lines only: the bar is below
    progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=json_out or plain_log)
    epoch_sums: dict[str, float] = {}
    epoch_state = {"steps": 0, "done": None, "started": time.perf_counter()}
    with progress, log_lines:  # log_lines' exit cancels its pending stage line, which must not outlive the command
        task = progress.add_task("train", total=None, info="loading data")
        log_lines("loading data")

        def on_step(report) -> None:
            terms = " ".join(f"{k} {v:.3f}" for k, v in report.terms.items())
            progress.update(task, total=report.total_steps, completed=report.step,
                            info=f"ep {report.epoch:.2f} loss {report.loss:.3f} {terms} acc {report.train_acc:.3f}")
            if not plain_log:
                return
            log_lines("training", report.step, report.total_steps)
            for key, value in {"loss": report.loss, **report.terms}.items():
                epoch_sums[key] = epoch_sums.get(key, 0.0) + value
            epoch_state["steps"] += 1
            if epoch_state["done"] is None:  # the first step of this process (a resumed run starts mid-way)
                epoch_state["done"] = int((report.step - 1) * report.epoch / report.step + 1e-9)
            if int(report.epoch + 1e-9) > epoch_state["done"] or report.step == report.total_steps:
                epoch_state["done"] = int(report.epoch + 1e-9)
                means = " ".join(f"{k} {v / epoch_state['steps']:.4f}" for k, v in epoch_sums.items())
                elapsed = time.perf_counter() - epoch_state["started"]
                print(f"epoch {report.epoch:.2f}/{recipe.epochs:g} step {report.step}/{report.total_steps} {means} "
                      f"train_acc {report.train_acc:.4f} elapsed {elapsed:.0f}s", file=sys.stderr, flush=True)
                epoch_sums.clear()
                epoch_state["steps"] = 0

        state_path = state_path_for(output)
        if resume and not state_path.exists():
            err_console.print(f"note: no saved state at {state_path}; training from the start")
        elif state_path.exists() and not resume:
            err_console.print(f"note: {state_path} holds an interrupted run; it is replaced (pass --resume to continue it)")
        try:
            result = run_training(recipe, output, data_dir, input_size, split_seed, force, on_step, norm, aux_split,
                                  test_split, resume=resume)
        except SiftError as exc:
            progress.update(task, visible=False)  # leave only the one-line error on screen
            progress.stop()
            fail(str(exc))
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        console.print(f"wrote {result['checkpoint']} - test accuracy {result['test_accuracy']:.2%} "
                      f"on {result['test_images']} images after {result['epochs']:.2f} epochs ({result['train_seconds']} s)",
                      soft_wrap=True, highlight=False)


@app.command("targets")
def targets_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
) -> None:
    """List the shipped device profiles: the backend each picks, its precisions and threads."""
    from .profiles import describe_targets
    from .render_targets import targets_table

    rows = describe_targets()
    if json_out:
        print(json.dumps(rows, indent=2))
    else:
        console.print(targets_table(rows))


@app.command("inspect")
def inspect_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(metavar="CHECKPOINT", help="A .safetensors checkpoint, or an official .pth with --arch (default: the shipped reference).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of an official .pth checkpoint (project checkpoints record it).")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="Input side of an official checkpoint whose weights fit both 32 and 64.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
) -> None:
    """Show a checkpoint's split: transmitted shape and bytes, edge/cloud params and MACs, and its metadata.

    Given a bundle folder: its target and precision, and the per-layer precisions of `--precision auto`."""
    try:
        with needs_extra("inspect"):
            from .inspect import inspect_bundle, inspect_checkpoint, render_bundle, render_inspection

            bundle = checkpoint is not None and checkpoint.is_dir()
            doc = inspect_bundle(checkpoint) if bundle else inspect_checkpoint(checkpoint, arch=arch, input_size=input_size)
    except SiftError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps(doc, indent=2))
    else:
        for table in (render_bundle if bundle else render_inspection)(doc):
            console.print(table)
            console.print()


@app.command("convert")
def convert_command(
    source: Annotated[Path, typer.Argument(metavar="OFFICIAL", help="An official-format checkpoint (.pth state_dict or {'model': state_dict, ...}).")],
    arch: Annotated[Optional[str], typer.Option(help="Architecture the file holds: siftfunnel-cnn, siftfunnel-vgg16bn, siftfunnel-resnet18, a plain-* twin or ae-cnn (AE_Classifier_4).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Project checkpoint to write (.safetensors).")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="Input side (read from the weights where they tell).")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Per-channel input mean, e.g. 0.4914,0.4822,0.4465 (default: the official script's for the channel count).")] = None,
    std: Annotated[Optional[str], typer.Option(help="Per-channel input std, e.g. 0.2023,0.1994,0.2010.")] = None,
    normalization: Annotated[Optional[str], typer.Option(help="Named mean/std instead: cifar10, facescrub or half (0.5/0.5).")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing checkpoint.")] = False,
) -> None:
    """Write an official .pth as a project checkpoint that records architecture, sizes, width and normalisation."""
    try:
        with needs_extra("convert"):
            from .checkpoint import convert_official
            from .data.preprocess import normalization_from_options

            if output is None:
                raise SiftError("pass --output (-o) with the .safetensors file to write")
            ckpt = convert_official(source, arch, output, normalization_from_options(mean, std, normalization),
                                    input_size, force)
    except SiftError as exc:
        fail(str(exc))
    for note in ckpt.metadata.get("normalization_source", "").split("assumed: ")[1:]:
        warn(note)
    spec = ckpt.spec
    console.print(f"wrote {escape(str(output))}: {spec.arch} ({spec.in_channels}x{spec.input_size}x{spec.input_size}, "
                  f"{spec.num_classes} classes, width {spec.width}), {ckpt.normalization.describe()}",
                  highlight=False, soft_wrap=True)


def _parity_table(parity: dict, title: str):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("bound", justify="right")
    limits = parity.get("thresholds", {})
    rows = [
        ("cosine of z (mean)", f"{parity['cosine_mean']:.6f}", f">= {limits['min_cosine']}" if limits else ""),
        ("cosine of z (worst image)", f"{parity['cosine_min']:.6f}", ""),
        ("max-abs error of z", f"{parity['max_abs']:.3g}", f"<= {limits['max_abs']}" if limits.get("max_abs") else ""),
    ]
    if "max_abs_relative" in parity:
        rows.append(("  as a share of z's largest magnitude", f"{parity['max_abs_relative']:.2%}",
                     f"<= {limits['max_abs_relative']:.1%}" if limits.get("max_abs_relative") else ""))
    if "top1_agreement" in parity:
        rows.append(("top-1 agreement with float", f"{parity['top1_agreement']:.2%}",
                     f">= {limits['min_top1_agreement']:.2%}" if limits else ""))
    if "top1_agreement_interval" in parity:
        lo, hi = parity["top1_agreement_interval"]
        sample = parity.get("sample") or {}
        rows.append((f"  95% interval ({sample.get('images', parity['images']):,} of {sample.get('of', parity['images']):,} images)",
                     f"{lo:.2%} - {hi:.2%}", "narrower than the margin" if parity.get("interval_narrower_than_margin")
                     else ("wider than the margin" if "interval_narrower_than_margin" in parity else "")))
    if "accuracy_float" in parity:
        rows.append(("accuracy float / deployed", f"{parity['accuracy_float']:.2%} / {parity['accuracy_deployed']:.2%}", ""))
    if "wire_int8" in parity:
        wire_row = f"{parity['wire_int8']['top1_agreement']:.2%}"
        if "accuracy" in parity["wire_int8"]:
            wire_row += f" (accuracy {parity['wire_int8']['accuracy']:.2%})"
        rows.append(("top-1 agreement, int8 on the wire", wire_row, ""))
    for row in rows:
        table.add_row(*row)
    return table


@app.command("export")
def export_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(metavar="CHECKPOINT", help="Checkpoint (.safetensors, or official .pth with --arch). Default: the shipped reference.", show_default=False)] = None,
    target: Annotated[str, typer.Option("--target", "-t", help="x86, rpi, jetson, a profile name from `sift-deploy targets`, or a profile .toml path.")] = "x86",
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16, int8 (default: the profile's), or auto: int8 per layer where accuracy and leakage bounds hold.")] = None,
    calib: Annotated[Optional[Path], typer.Option(help="Calibration images (.npz with 'images', or .npy); default: the committed set.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset to draw calibration images from (its train split) and to check parity on (its test split).")] = None,
    calib_method: Annotated[str, typer.Option(help="minmax, entropy or percentile.")] = "minmax",
    calib_count: Annotated[int, typer.Option(help="Calibration images to use.")] = 512,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Bundle folder (default: bundles/ARCH-TARGET-PRECISION).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of an official .pth checkpoint.")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="Input side of an official checkpoint (read from its weights where they tell).")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Per-channel input mean of an official checkpoint, e.g. 0.4914,0.4822,0.4465.")] = None,
    std: Annotated[Optional[str], typer.Option(help="Per-channel input std of an official checkpoint, e.g. 0.2023,0.1994,0.2010.")] = None,
    normalization: Annotated[Optional[str], typer.Option(help="Named mean/std of an official checkpoint: cifar10, facescrub or half (0.5/0.5).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for calibration sampling, recorded in the manifest.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
    sign: Annotated[Optional[Path], typer.Option("--sign", metavar="KEY", help="Sign the manifest with this private key (from `sift-deploy keygen`).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Let the runtimes' own log output (absl, oneDNN, XNNPACK, torch warnings) through.")] = False,
    split_at: Annotated[Optional[str], typer.Option(help="Cut to split at (`sift-deploy inspect` lists them); default: the funnel.")] = None,
    parity_images: Annotated[str, typer.Option("--parity-images", help="Test images for the parity run: a sample size (its 95% agreement interval is reported) or 'all'.")] = "3000",
    max_acc_drop: Annotated[Optional[float], typer.Option(help="auto: accuracy drop allowed, in points (default: the bounds file's).")] = None,
    max_leak_increase: Annotated[Optional[float], typer.Option(help="auto: leakage-probe SSIM increase allowed (default: the bounds file's).")] = None,
    max_iterations: Annotated[Optional[int], typer.Option(help="auto: verified reverts to float at most, and as many additions back to int8 after the fixed rules (default: the bounds file's).")] = None,
    feature_noise: Annotated[float, typer.Option(help="Baseline defence: Gaussian noise of this std added to z on the device before the wire (the official --protect dp uses 0.8).")] = 0.0,
    feature_dropout: Annotated[float, typer.Option(help="Baseline defence: each element of z zeroed with this probability on the device, unscaled (the official --protect drop uses 0.8).")] = 0.0,
) -> None:
    """Split (at the funnel, or --split-at), quantize and export the edge for a device, export the float cloud, check parity.

    With --feature-noise or --feature-dropout, the bundle records a random perturbation of z that the sender applies
    after the edge artifact (`check` measures accuracy and leakage on perturbed z; parity compares the artifact unperturbed).

    Exit 0: bundle written and parity holds. Exit 1: bundle written but parity (or, with auto, a bound) is missed. Exit 2: bad input.
    """
    from .quiet_output import third_party_output_hidden
    from .stage_progress import StageProgress

    try:
        with third_party_output_hidden(hide=not verbose) as ours, needs_extra("export"):
            from .data.preprocess import normalization_from_options
            from .export import export_bundle
            from .perturbation import Perturbation
            from .precision.progress import search_progress

            norm = normalization_from_options(mean, std, normalization)
            perturbation = Perturbation(feature_noise, feature_dropout)
            bounds, on_candidate = None, None
            if precision == "auto":
                from .precision.run import search_bounds

                bounds = search_bounds(max_acc_drop, max_leak_increase, max_iterations)
            # one live display at a time: the search's bar (stages and candidates) for auto, else the stage bar
            display = (search_progress(Console(file=ours, stderr=ours is None), disable=json_out)
                       if precision == "auto" else StageProgress("export", ours))
            with display as shown:
                if precision == "auto":
                    on_stage, on_candidate = shown
                    progress = lambda stage, done, total: on_stage(stage)  # noqa: E731
                else:
                    progress = shown
                outcome = export_bundle(checkpoint, target, precision, calib, data_dir, calib_method, output, force,
                                        seed, calib_count, arch=arch, on_progress=progress, sign_key=sign,
                                        input_size=input_size, normalization=norm, split_at=split_at,
                                        parity_images=parity_images, search_bounds=bounds, on_candidate=on_candidate,
                                        perturbation=perturbation)
    except SiftError as exc:
        fail(str(exc))
    manifest = outcome.manifest
    for warning in manifest.get("warnings") or []:
        warn(warning)
    parity = manifest["parity"]
    if json_out:
        print(json.dumps(manifest, indent=2))
    else:
        console.print(f"bundle [bold]{outcome.bundle}[/]: {manifest['model']['arch']} edge -> {manifest['backend']} "
                      f"{manifest['precision']} ({manifest['edge_file']}), cloud -> {manifest['cloud_file']}")
        console.print(_parity_table(parity, f"parity on {parity['images']} images ({parity['source']}, {parity['runtime']})"))
        for note in manifest["export"]["details"].get("notes", []):
            console.print(f"note: {note}")
        if sign is not None:
            console.print(f"signed: manifest.sig (key {escape(str(sign))})", highlight=False)
        if parity.get("note"):
            console.print(f"note: {escape(parity['note'])}")
        if "precision_search" in manifest:
            from .precision.render import search_table

            console.print(search_table(manifest["precision_search"]))
    if not outcome.passed:
        for failure in parity["failures"]:
            err_console.print(f"[bold red]parity failed:[/] {failure}")
        for bound in outcome.unmet_bounds:
            err_console.print(f"[bold red]bound not met:[/] {bound}")
    verdict(outcome.passed, json_out, f"bundle {outcome.bundle} written, parity holds",
            f"bundle {outcome.bundle} written, but parity misses {len(parity.get('failures', []))} bound(s)"
            + (f" and the search misses {len(outcome.unmet_bounds)}" if outcome.unmet_bounds else ""))


@app.command("verify")
def verify_command(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder written by `sift-deploy export`.", show_default=False)],
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads (default: the profile's).")] = None,
    runtime: Annotated[Optional[str], typer.Option(help=f"Run under a stand-in runtime, labelled so: {stand_in_choices()}.")] = None,
    public_key: Annotated[Optional[Path], typer.Option("--public-key", metavar="PUB", help="Require a valid signature of the manifest by this public key.")] = None,
    require_parity: Annotated[bool, typer.Option("--require-parity", help="Fail (exit 2) when the bundle's runtime is missing here, instead of checking the files only.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the signature (with --public-key), re-hash every file of a bundle and re-run parity on its stored images.

    Exit 0: intact and parity holds (or cannot run here: the bundle's runtime is missing). Exit 1: the signature
    does not hold, a file was changed or parity fails. Exit 2: not a bundle, or --require-parity without the runtime.
    """
    from .verify import verify_bundle

    try:
        report = verify_bundle(bundle, threads, runtime, public_key, require_parity)
    except SiftError as exc:
        fail(str(exc))
    signature = report["signature"]
    if json_out:
        print(json.dumps(report, indent=2))
    elif signature["problem"]:
        err_console.print(f"[bold red]signature:[/] {escape(signature['problem'])}", highlight=False, soft_wrap=True)
    elif report["file_problems"]:
        for problem in report["file_problems"]:
            err_console.print(f"[bold red]tampered:[/] {problem}")
    else:
        if signature["status"] == "valid":
            console.print(f"manifest signature valid (key {signature['key_id']})")
        console.print(f"{report['files_checked']} files match the manifest")
        if "parity_skipped" in report:
            console.print(f"parity not re-run: {escape(report['parity_skipped'])}", highlight=False, soft_wrap=True)
        else:
            console.print(_parity_table(report["parity"], f"parity on {report['parity']['images']} stored images "
                                                          f"({report['parity']['runtime']}; cloud: {report['cloud']})"))
        if "precision_search" in report:
            from .precision.render import search_table

            console.print(search_table(report["precision_search"]))
    if not report["passed"]:
        for failure in report.get("parity", {}).get("failures", []):
            err_console.print(f"[bold red]parity failed:[/] {failure}")
    problems = "files differ from the manifest" if report["file_problems"] else "parity misses a bound"
    verdict(report["passed"], json_out, f"bundle {bundle} is intact and parity holds", f"bundle {bundle}: {problems}")


@app.command("check")
def check_command(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder written by `sift-deploy export`.", show_default=False)],
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset with the aux (attacker) and test (private) splits; default: Debian's Fashion-MNIST.")] = None,
    bounds: Annotated[Optional[Path], typer.Option(help="Bounds TOML (default: the shipped default-bounds.toml).")] = None,
    report_dir: Annotated[Path, typer.Option(help="Where check.json, check.md, check.junit.xml and reconstructions.png go.")] = Path("reports"),
    seed: Annotated[int, typer.Option(help="Base seed of the attacks; the same bundle and seed give the same verdict.")] = 0,
    budget: Annotated[str, typer.Option(help="fast (default, < 10 min on 2 cores) or full (stronger, slower attacks).")] = "fast",
    decoder_pairing: Annotated[Optional[str], typer.Option(help="How each seed's float and deployed decoders are paired: independent (each from scratch) or branched (from a common trunk, so the seed's luck cancels in the paired increase). Default: branched (both presets).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="The float checkpoint the bundle came from (default: the path in its manifest).")] = None,
    twin: Annotated[Optional[Path], typer.Option(help="Unprotected twin checkpoint for the attack-strength bound (default: the shipped twin).")] = None,
    write_caps: Annotated[Optional[Path], typer.Option(help="Also write a bounds file that caps leakage at this float model's measured SSIM/PSNR/MI plus the allowed increase; check other bundles (a retrained or swapped edge) with it.")] = None,
    aux_split: Annotated[Optional[float], typer.Option(help="The attacker's aux split: a fraction (0.3) or a count (3000) of the training images (default: the checkpoint's); the test split stays the checkpoint's.")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Per-channel input mean of an official checkpoint (must match the bundle's).")] = None,
    std: Annotated[Optional[str], typer.Option(help="Per-channel input std of an official checkpoint (must match the bundle's).")] = None,
    normalization: Annotated[Optional[str], typer.Option(help="Named mean/std of an official checkpoint: cifar10, facescrub or half.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Gate a deployment: accuracy and model-inversion leakage of the deployed artifact vs the float model.

    Exit 0: every bound holds. Exit 1: a bound is broken (each is named with its figures). Exit 2: bad input.
    """

    try:
        require_extra("check")
        from .bounds import load_bounds
        from .data.preprocess import normalization_from_options
        from .privacy.budget import AttackBudget

        norm = normalization_from_options(mean, std, normalization)
        limits = load_bounds(bounds)
        preset = AttackBudget.preset(budget)
        if decoder_pairing is not None:
            preset = preset.with_(decoder_pairing=decoder_pairing)
        if report_dir.exists() and not report_dir.is_dir():
            raise SiftError(f"--report-dir {report_dir} is a file; give a folder for the reports")
        if write_caps is not None and write_caps.is_dir():
            raise SiftError(f"--write-caps {write_caps} is a folder; give a file name such as caps.toml")
        from .fileio import check_writable

        for path in (report_dir / "check.json", write_caps):  # before minutes of attacks, not after
            if path is not None:
                check_writable(path, force=True)
        from .check import run_check
        from .report import markdown, write_reports
    except SiftError as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(missing_extra_message("check", exc.name or str(exc)))
    import signal

    from .check import CheckInterrupted
    from .stage_progress import StageProgress

    def on_term(signum, frame):  # SIGTERM (a CI job cancelled) ends the check like Ctrl-C: with a partial report
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with StageProgress("check", disable=json_out) as progress:
            report, grid = run_check(bundle, limits, preset, seed, data_dir, checkpoint, twin, progress,
                                     normalization=norm, aux_split=aux_split, on_warning=lambda m: progress.console.print(
                                         f"[bold yellow]warning:[/] {escape(m)}", highlight=False, soft_wrap=True))
    except SiftError as exc:
        fail(str(exc))
    except CheckInterrupted as stop:
        from .fileio import atomic_file

        partial = report_dir / "check.partial.json"
        report_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(partial, force=True) as tmp:
            tmp.write_text(json.dumps(stop.partial, indent=2) + "\n")
        where = stop.partial["interrupted"]
        fail(f"check interrupted during stage {where['during_stage']} after {len(where['stages_done'])} of "
             f"{len(where['stages_done']) + len(where['stages_left'])} stages; partial report: {partial}", code=130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        paths = write_reports(report, grid, report_dir)
        if write_caps is not None:
            from .bounds import caps_from_report
            from .fileio import atomic_file

            with atomic_file(write_caps, force=True) as tmp:
                tmp.write_text(caps_from_report(report, limits))
            paths["caps"] = str(write_caps)
    except OSError as exc:
        fail(f"could not write the reports: {exc}")
    report["reports"] = paths
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        console.print(markdown(report), soft_wrap=True)  # a log keeps each row on one line
        console.print(f"reports: {', '.join(paths.values())}")
    if not report["passed"]:
        for b in report["bounds"]:
            if not b["passed"]:
                sign = "<=" if b["kind"] == "max" else ">="
                err_console.print(f"[bold red]bound broken:[/] {b['name']}: {b['measured']:.4g} is not {sign} {b['limit']:.4g} ({b['detail']})")
        raise typer.Exit(1)


@app.command("bench")
def bench_command(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder written by `sift-deploy export`.", show_default=False)],
    iterations: Annotated[int, typer.Option(help="Timed inferences after warm-up.")] = 500,
    warmup: Annotated[int, typer.Option(help="Untimed inferences before timing.")] = 50,
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads (default: the profile's, capped at the usable cores).")] = None,
    batch: Annotated[int, typer.Option(help="Images per inference call.")] = 1,
    runtime: Annotated[Optional[str], typer.Option(help=f"Time under a stand-in runtime, labelled so: {stand_in_choices()}.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report (JSON, schema_version) instead of tables.")] = False,
    json_file: Annotated[Optional[Path], typer.Option("--json-file", help="Also write the JSON report to this file.")] = None,
    markdown_file: Annotated[Optional[Path], typer.Option("--markdown", help="Write a Markdown summary (fits a CI job summary) to this file.")] = None,
    baseline: Annotated[Optional[Path], typer.Option(help="A JSON report of an earlier run (--json-file) to compare with.")] = None,
    tolerance: Annotated[float, typer.Option(help="Percent a figure may exceed the baseline before it counts as a regression.")] = 10.0,
    server: Annotated[Optional[str], typer.Option("--server", help="Measure end to end against Triton serving this bundle (grpc://HOST:PORT or http://HOST:PORT).")] = None,
    clients: Annotated[int, typer.Option("--clients", help="With --server: concurrent clients in the throughput phase.")] = 1,
    profile: Annotated[bool, typer.Option("--profile", help="Also profile per op (ORT's profiler; LiteRT per-node timing): the ops that take the most time, and the share of quantize/dequantize and layout changes.")] = False,
    profile_runs: Annotated[int, typer.Option("--profile-runs", help="With --profile: profiled inferences.")] = 50,
) -> None:
    """Time the bundle's edge artifact on this device: latency, peak memory, bytes on the wire.

    With --server: edge here -> wire -> Triton, split into edge, network + queue and cloud; throughput with
    --clients; bytes counted at the socket.

    Exit 0: measured; budgets and baseline hold. Exit 1: a budget is exceeded or a figure regressed. Exit 2: bad input.
    """
    if server is not None:
        from .serve.e2e_bench import bench_server_command

        bench_server_command(bundle, server, clients, iterations, warmup, threads, json_file, markdown_file, json_out)
        return
    from .bench import BenchOptions, render_markdown, render_tables, run_bench, write_text
    from .stage_progress import StageProgress

    options = BenchOptions(iterations=iterations, warmup=warmup, threads=threads, batch=batch, runtime=runtime,
                           baseline=baseline, tolerance_pct=tolerance, profile=profile,
                           profile_runs=profile_runs)
    from .fileio import check_writable

    try:
        for path in (json_file, markdown_file):  # before the timing run, not after
            if path is not None:
                check_writable(path, force=True)
        with StageProgress("bench") as progress:
            report = run_bench(bundle, options, progress)
    except SiftError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        for table in render_tables(report):
            console.print(table)
        for note in report["notes"]:
            console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    for reason in report["timing_noise"]["reasons"]:
        err_console.print(f"[bold yellow]warning:[/] noisy timing: {escape(reason)}", highlight=False, soft_wrap=True)
    for path, text in ((json_file, json.dumps(report, indent=2) + "\n"), (markdown_file, render_markdown(report))):
        if path is not None:
            write_text(path, text)
            err_console.print(f"wrote {escape(str(path))}", highlight=False)
    if not report["passed"]:
        for failure in report["failures"]:
            err_console.print(f"[bold red]bench failed:[/] {escape(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder written by `sift-deploy export`.", show_default=False)],
    host: Annotated[str, typer.Option(help="Address to bind; the default serves this machine only (0.0.0.0 exposes it).")] = "127.0.0.1",
    http_port: Annotated[int, typer.Option("--http-port", help="Triton's HTTP/REST port.")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="Triton's gRPC port.")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Triton's Prometheus metrics port.")] = 8002,
    variant: Annotated[str, typer.Option(help="Model repository variant: python (CPU, runs here), onnxruntime or tensorrt (GPU servers with those Triton backends).")] = "python",
    startup_timeout: Annotated[float, typer.Option(help="Seconds to wait for the model to be ready.")] = 120.0,
) -> None:
    """Serve the bundle's cloud half with tritonserver until Ctrl-C or SIGTERM.

    Exit 0: stopped on request. Exit 1: the server died. Exit 2: bad input, no tritonserver, or a port is taken.
    """
    import signal

    from .serve.server import TritonServer, bundle_repository

    try:
        repository, _ = bundle_repository(bundle, variant)
        server = TritonServer(repository, host=host, ports={"http": http_port, "grpc": grpc_port, "metrics": metrics_port},
                              startup_timeout_s=startup_timeout)
        with err_console.status(f"starting tritonserver on {repository}", spinner="dots"):
            server.start()
    except SiftError as exc:
        fail(str(exc))

    def on_term(signum, frame):  # SIGTERM: leave the loop below like Ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        ends = server.endpoints()
        console.print(f"serving sift_cloud ({escape(variant)} variant) from {escape(str(bundle))} "
                      f"(tritonserver pid {server.pid})", highlight=False)
        for name in ("grpc", "http", "metrics"):
            console.print(f"  {name:8s}{ends[name]}", highlight=False)
        console.print(f"  try: sift-deploy infer {escape(str(bundle))} IMAGES --server {server.client_url('grpc')}",
                      highlight=False, soft_wrap=True)
        console.print("Ctrl-C stops the server", highlight=False)
        sys.stdout.flush()
        while server.alive():
            time.sleep(0.5)
        code = server.process.returncode
        server.keep_log = True
        err_console.print(f"[bold red]error:[/] tritonserver exited on its own (code {code}); log: "
                          f"{escape(str(server.log_path))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        code = server.stop()
        console.print(f"stopped tritonserver (exit code {code})", highlight=False)
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


@app.command("infer")
def infer_command(
    bundle: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle folder written by `sift-deploy export`.", show_default=False)],
    images: Annotated[Path, typer.Argument(metavar="IMAGES", help="uint8 images: an .npz ('images', optional 'labels') or .npy, or an image folder (files, or one sub-folder per class).", show_default=False)],
    server: Annotated[str, typer.Option("--server", help="Triton serving this bundle: grpc://HOST:PORT or http://HOST:PORT.")] = "grpc://127.0.0.1:8001",
    batch: Annotated[int, typer.Option(help="Images per request (at most the model's max_batch_size).")] = 32,
    timeout: Annotated[float, typer.Option(help="Seconds a request may take before it fails.")] = 10.0,
    threads: Annotated[Optional[int], typer.Option(help="Edge runtime threads (default: the profile's).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print predictions as JSON.")] = False,
) -> None:
    """Run the edge artifact here, send z on the wire format to Triton, print the predictions.

    Exit 0: predicted. Exit 2: bad input, or the server is unreachable, too slow or rejects the request.
    """
    from .serve.client import infer_images

    if batch < 1 or timeout <= 0:
        fail("--batch must be at least 1 and --timeout positive")
    try:
        result = infer_images(bundle, images, server, batch=batch, timeout_s=timeout, threads=threads)
    except SiftError as exc:
        fail(str(exc))
    result.pop("logits")
    if json_out:
        print(json.dumps(result, indent=2))
        return
    for p in result["predictions"]:
        truth = f"\ttrue {p['true']}" if "true" in p else ""
        print(f"{p['name']}\t{p['class']}\t{p['label']}\t{p['confidence']:.4f}{truth}")
    summary = f"{result['images']} images via {result['server']} ({result['wire']} wire) in {result['seconds']:.2f} s"
    if "accuracy" in result:
        summary += f"; accuracy {result['accuracy']:.2%}"
        if "bundle_parity_accuracy" in result:
            summary += f" (bundle parity, int8 wire: {result['bundle_parity_accuracy']:.2%})"
    err_console.print(summary, highlight=False, soft_wrap=True)


@app.command("keygen")
def keygen_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Private key file (mode 0600); the public key goes to OUTPUT.pub.")] = Path("sift-deploy.key"),
    force: Annotated[bool, typer.Option(help="Overwrite an existing key pair.")] = False,
) -> None:
    """Make an ed25519 key pair for signing bundles (export --sign KEY, verify --public-key KEY.pub)."""
    from .signing import generate_key_pair

    try:
        keys = generate_key_pair(output, force)
    except SiftError as exc:
        fail(str(exc))
    console.print(f"wrote private key {escape(keys['private_key'])} (keep it secret) and public key "
                  f"{escape(keys['public_key'])}; key id {keys['key_id']}", highlight=False, soft_wrap=True)


@app.command("advise")
def advise_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(metavar="CHECKPOINT", help="Checkpoint (.safetensors, or official .pth with --arch). Default: the shipped reference.", show_default=False)] = None,
    target: Annotated[str, typer.Option("--target", "-t", help="x86, rpi, jetson, a shipped profile name, or a profile .toml path.")] = "x86",
    bandwidth: Annotated[float, typer.Option(help="Uplink in Mbit/s for the end-to-end latency.")] = 10.0,
    max_leakage: Annotated[Optional[float], typer.Option(help="Largest decoder SSIM (upper end of its 95% interval) a recommended cut may have.")] = None,
    cuts: Annotated[Optional[str], typer.Option(help="Comma-separated cuts to try (default: all; `sift-deploy inspect` lists them).")] = None,
    budget: Annotated[str, typer.Option(help="Attack budget: fast or full (one decoder seed per cut either way).")] = "fast",
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset with aux and test splits (default: Debian's Fashion-MNIST).")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for the bundles, advise.json and advise.png (default: advise/ARCH-TARGET).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of an official .pth checkpoint.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of calibration sampling and the attack.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export every candidate cut for a target, measure latency, bytes, accuracy and leakage, recommend one.

    Exit 0: a cut is recommended. Exit 1: no cut is within --max-leakage. Exit 2: bad input.
    """
    try:
        require_extra("advise")
    except SiftError as exc:
        fail(str(exc))
    from .advise import AdviseOptions, run_advise
    from .advise.render import markdown_table, table
    from .privacy.budget import AttackBudget

    def cut_done(index: int, total: int, cut: dict) -> None:
        ssim = cut["leakage"]["decoder"]["ssim"]
        err_console.print(f"cut {index}/{total} {escape(cut['name'])}: e2e {cut['end_to_end_ms']:.3f} ms, "
                          f"{cut['bytes']['int8']:,} B int8, SSIM {ssim['mean']:.3f} [{ssim['low']:.3f}, {ssim['high']:.3f}], "
                          f"{cut['seconds']:.0f} s", highlight=False, soft_wrap=True)

    from .stage_progress import StageProgress

    with StageProgress("advise") as progress:  # a bar on a terminal, plain stage lines in a log
        try:
            options = AdviseOptions(target=target, checkpoint=checkpoint, arch=arch, bandwidth_mbps=bandwidth,
                                    max_leakage_ssim=max_leakage, budget=AttackBudget.preset(budget),
                                    cuts=[c.strip() for c in cuts.split(",") if c.strip()] if cuts else None,
                                    output=output, data_dir=data_dir, seed=seed, force=force)
            report = run_advise(options, progress, cut_done)
        except SiftError as exc:
            fail(str(exc))
    for warning in report["warnings"]:
        err_console.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if json_out:
        print(json.dumps(report, indent=2))
    else:  # in a log (not a terminal) the Markdown table keeps each row on one line, as check's does
        console.print(table(report) if console.is_terminal else markdown_table(report), soft_wrap=True)
        console.print(f"recommended: {escape(str(report['recommendation']['cut']))} - "
                      f"{escape(report['recommendation']['reason'])}", highlight=False, soft_wrap=True)
    if report["recommendation"]["cut"] is None:
        raise typer.Exit(1)


def run() -> None:
    """Console-script entry point: every error is one line on stderr, exit 2 for bad input."""
    # typer may vendor its own click; take its exception class from typer rather than importing click
    click_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    try:
        code = app(standalone_mode=False)
    except SiftError as exc:  # errors raised outside a command's own handling
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except click_error as exc:  # a mistyped command, option or value: one line that says where help is
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path} --help" if ctx is not None else "sift-deploy --help"
        message = " ".join(exc.format_message().split())
        if not message:  # no arguments at all: the help was printed already
            sys.exit(2)
        err_console.print(f"[bold red]error:[/] {escape(message)} (see {where})", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("[bold red]error:[/] interrupted", highlight=False)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
