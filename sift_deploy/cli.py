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
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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
    # rich's live bar draws nothing into a log file (only its last state, at the end): there, print one plain
    # line per epoch instead.
    plain_log = not err_console.is_terminal
    progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, disable=json_out or plain_log)
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
            progress.update(task, visible=False)  # leave only the one-line error on screen
            progress.stop()
            fail(str(exc))
    if json_out:
        print(json.dumps(result, indent=2))
    else:
        console.print(f"wrote {result['checkpoint']} - test accuracy {result['test_accuracy']:.2%} "
                      f"on {result['test_images']} images after {result['epochs']:.2f} epochs ({result['train_seconds']} s)",
                      soft_wrap=True, highlight=False)


@app.command("inspect")
def inspect_command(
    checkpoint: Annotated[Optional[Path], typer.Argument(metavar="CHECKPOINT", help="A .safetensors checkpoint, or an official .pth with --arch (default: the shipped reference).", show_default=False)] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of an official .pth checkpoint (project checkpoints record it).")] = None,
    input_size: Annotated[Optional[int], typer.Option(help="Input side of an official checkpoint whose weights fit both 32 and 64.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")] = False,
) -> None:
    """Show a checkpoint's split: transmitted shape and bytes, edge/cloud params and MACs, and its metadata.

    Given a bundle folder: its target and precision, and the per-layer precisions of `--precision auto`."""
    from .inspect import inspect_bundle, inspect_checkpoint, render_bundle, render_inspection

    try:
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
        ("max-abs error of z", f"{parity['max_abs']:.3g}", f"<= {limits['max_abs']}" if limits else ""),
    ]
    if "top1_agreement" in parity:
        rows.append(("top-1 agreement with float", f"{parity['top1_agreement']:.2%}",
                     f">= {limits['min_top1_agreement']:.2%}" if limits else ""))
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
    checkpoint: Annotated[Optional[Path], typer.Argument(help="Checkpoint (.safetensors, or official .pth with --arch). Default: the shipped reference.")] = None,
    target: Annotated[str, typer.Option("--target", "-t", help="x86, rpi, jetson, a shipped profile name (see targets/), or a profile .toml path.")] = "x86",
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16, int8 (default: the profile's), or auto: int8 per layer where accuracy and leakage bounds hold.")] = None,
    calib: Annotated[Optional[Path], typer.Option(help="Calibration images (.npz with 'images', or .npy); default: the committed set.")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset to draw calibration images from (its train split) and to check parity on (its test split).")] = None,
    calib_method: Annotated[str, typer.Option(help="minmax, entropy or percentile.")] = "minmax",
    calib_count: Annotated[int, typer.Option(help="Calibration images to use.")] = 512,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Bundle folder (default: bundles/ARCH-TARGET-PRECISION).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="Architecture of an official .pth checkpoint.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for calibration sampling, recorded in the manifest.")] = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing bundle.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    max_acc_drop: Annotated[Optional[float], typer.Option(help="auto: accuracy drop allowed, in points (default: the bounds file's).")] = None,
    max_leak_increase: Annotated[Optional[float], typer.Option(help="auto: leakage-probe SSIM increase allowed (default: the bounds file's).")] = None,
    max_iterations: Annotated[Optional[int], typer.Option(help="auto: verified reverts to float at most (default: the bounds file's).")] = None,
) -> None:
    """Split at the funnel, quantize and export the edge for a device, export the float cloud, check parity.

    Exit 0: bundle written and parity holds. Exit 1: bundle written but parity (or, with auto, a bound) is missed. Exit 2: bad input.
    """
    from .export import export_bundle
    from .precision.progress import search_progress

    with search_progress(err_console, disable=json_out) as (on_stage, on_candidate):
        try:
            bounds = None
            if precision == "auto":
                from .precision.run import search_bounds

                bounds = search_bounds(max_acc_drop, max_leak_increase, max_iterations)
            outcome = export_bundle(checkpoint, target, precision, calib, data_dir, calib_method, output, force, seed,
                                    calib_count, arch=arch, on_stage=on_stage, search_bounds=bounds,
                                    on_candidate=on_candidate)
        except SiftError as exc:
            fail(str(exc))
    manifest = outcome.manifest
    parity = manifest["parity"]
    if json_out:
        print(json.dumps(manifest, indent=2))
    else:
        console.print(f"bundle [bold]{outcome.bundle}[/]: {manifest['model']['arch']} edge -> {manifest['backend']} "
                      f"{manifest['precision']} ({manifest['edge_file']}), cloud -> {manifest['cloud_file']}")
        console.print(_parity_table(parity, f"parity on {parity['images']} images ({parity['source']}, {parity['runtime']})"))
        for note in manifest["export"]["details"].get("notes", []):
            console.print(f"note: {note}")
        if "precision_search" in manifest:
            from .precision.render import search_table

            console.print(search_table(manifest["precision_search"]))
    if not outcome.passed:
        for failure in parity["failures"]:
            err_console.print(f"[bold red]parity failed:[/] {failure}")
        for bound in outcome.unmet_bounds:
            err_console.print(f"[bold red]bound not met:[/] {bound}")
        raise typer.Exit(1)


@app.command("verify")
def verify_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `sift-deploy export`.")],
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads (default: the profile's).")] = None,
    runtime: Annotated[Optional[str], typer.Option(help="Run a jetson bundle under onnxruntime as a labelled stand-in.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-hash every file of a bundle and re-run parity on its stored reference images.

    Exit 0: intact and parity holds. Exit 1: a file was changed or parity fails. Exit 2: not a bundle.
    """
    from .verify import verify_bundle

    try:
        report = verify_bundle(bundle, threads, runtime)
    except SiftError as exc:
        fail(str(exc))
    if json_out:
        print(json.dumps(report, indent=2))
    elif report["file_problems"]:
        for problem in report["file_problems"]:
            err_console.print(f"[bold red]tampered:[/] {problem}")
    else:
        console.print(f"{report['files_checked']} files match the manifest")
        console.print(_parity_table(report["parity"], f"parity on {report['parity']['images']} stored images "
                                                      f"({report['parity']['runtime']}; cloud: {report['cloud']})"))
        if "precision_search" in report:
            from .precision.render import search_table

            console.print(search_table(report["precision_search"]))
    if not report["passed"]:
        for failure in report.get("parity", {}).get("failures", []):
            err_console.print(f"[bold red]parity failed:[/] {failure}")
        raise typer.Exit(1)


@app.command("check")
def check_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `sift-deploy export`.")],
    data_dir: Annotated[Optional[Path], typer.Option(help="Dataset with the aux (attacker) and test (private) splits; default: Debian's Fashion-MNIST.")] = None,
    bounds: Annotated[Optional[Path], typer.Option(help="Bounds TOML (default: the shipped default-bounds.toml).")] = None,
    report_dir: Annotated[Path, typer.Option(help="Where check.json, check.md, check.junit.xml and reconstructions.png go.")] = Path("reports"),
    seed: Annotated[int, typer.Option(help="Base seed of the attacks; the same bundle and seed give the same verdict.")] = 0,
    budget: Annotated[str, typer.Option(help="fast (default, < 10 min on 2 cores) or full (stronger, slower attacks).")] = "fast",
    checkpoint: Annotated[Optional[Path], typer.Option(help="The float checkpoint the bundle came from (default: the path in its manifest).")] = None,
    twin: Annotated[Optional[Path], typer.Option(help="Unprotected twin checkpoint for the attack-strength bound (default: the shipped twin).")] = None,
    write_caps: Annotated[Optional[Path], typer.Option(help="Also write a bounds file that caps leakage at this float model's measured SSIM/PSNR/MI plus the allowed increase; check other bundles (a retrained or swapped edge) with it.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Gate a deployment: accuracy and model-inversion leakage of the deployed artifact vs the float model.

    Exit 0: every bound holds. Exit 1: a bound is broken (each is named with its figures). Exit 2: bad input.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .bounds import load_bounds
    from .privacy.budget import AttackBudget

    try:
        limits = load_bounds(bounds)
        preset = AttackBudget.preset(budget)
        if report_dir.exists() and not report_dir.is_dir():
            raise SiftError(f"--report-dir {report_dir} is a file; give a folder for the reports")
        if write_caps is not None and write_caps.is_dir():
            raise SiftError(f"--write-caps {write_caps} is a folder; give a file name such as caps.toml")
        from .check import run_check
        from .report import markdown, write_reports
    except SiftError as exc:
        fail(str(exc))
    except ImportError as exc:
        fail(f"check needs the check extra ({exc.name} is missing); pip install 'sift-deploy[check]'")
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, disable=json_out)
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with progress:
        try:
            report, grid = run_check(bundle, limits, preset, seed, data_dir, checkpoint, twin, on_progress)
        except SiftError as exc:
            progress.stop()
            fail(str(exc))
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
        console.print(markdown(report))
        console.print(f"reports: {', '.join(paths.values())}")
    if not report["passed"]:
        for b in report["bounds"]:
            if not b["passed"]:
                sign = "<=" if b["kind"] == "max" else ">="
                err_console.print(f"[bold red]bound broken:[/] {b['name']}: {b['measured']:.4g} is not {sign} {b['limit']:.4g} ({b['detail']})")
        raise typer.Exit(1)


@app.command("bench")
def bench_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `sift-deploy export`.")],
    iterations: Annotated[int, typer.Option(help="Timed inferences after warm-up.")] = 500,
    warmup: Annotated[int, typer.Option(help="Untimed inferences before timing.")] = 50,
    threads: Annotated[Optional[int], typer.Option(help="Runtime threads (default: the profile's, capped at the usable cores).")] = None,
    batch: Annotated[int, typer.Option(help="Images per inference call.")] = 1,
    runtime: Annotated[Optional[str], typer.Option(help="onnxruntime: time a jetson bundle's Q/DQ ONNX on this CPU as a labelled stand-in.")] = None,
    json_file: Annotated[Optional[Path], typer.Option("--json", help="Write the report (JSON, schema_version) to this file.")] = None,
    markdown_file: Annotated[Optional[Path], typer.Option("--markdown", help="Write a Markdown summary (fits a CI job summary) to this file.")] = None,
    baseline: Annotated[Optional[Path], typer.Option(help="A --json report of an earlier run to compare with.")] = None,
    tolerance: Annotated[float, typer.Option(help="Percent a figure may exceed the baseline before it counts as a regression.")] = 10.0,
    server: Annotated[Optional[str], typer.Option("--server", help="Measure end to end against Triton serving this bundle (grpc://HOST:PORT or http://HOST:PORT).")] = None,
    clients: Annotated[int, typer.Option("--clients", help="With --server: concurrent clients in the throughput phase.")] = 1,
) -> None:
    """Time the bundle's edge artifact on this device: latency, peak memory, bytes on the wire.

    With --server: edge here -> wire -> Triton, split into edge, network + queue and cloud; throughput with
    --clients; bytes counted at the socket.

    Exit 0: measured; budgets and baseline hold. Exit 1: a budget is exceeded or a figure regressed. Exit 2: bad input.
    """
    if server is not None:
        from .serve.e2e_bench import bench_server_command

        bench_server_command(bundle, server, clients, iterations, warmup, threads, json_file, markdown_file)
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .bench import BenchOptions, render_markdown, render_tables, run_bench, write_text

    options = BenchOptions(iterations=iterations, warmup=warmup, threads=threads, batch=batch, runtime=runtime,
                           baseline=baseline, tolerance_pct=tolerance)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, auto_refresh=False, transient=True)
    tasks: dict[str, tuple[int, int]] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            for task, task_total in tasks.values():  # a new stage means the earlier ones are done
                progress.update(task, completed=task_total)
            tasks[stage] = (progress.add_task(stage, total=total), total)
        progress.update(tasks[stage][0], completed=done, total=total)
        progress.refresh()

    with progress:
        try:
            report = run_bench(bundle, options, on_progress)
        except SiftError as exc:
            progress.stop()
            fail(str(exc))
    for table in render_tables(report):
        console.print(table)
    for note in report["notes"]:
        console.print(f"note: {escape(note)}", highlight=False, soft_wrap=True)
    if json_file is not None:
        write_text(json_file, json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {escape(str(json_file))}", highlight=False)
    if markdown_file is not None:
        write_text(markdown_file, render_markdown(report))
        console.print(f"wrote {escape(str(markdown_file))}", highlight=False)
    if not report["passed"]:
        for failure in report["failures"]:
            err_console.print(f"[bold red]bench failed:[/] {escape(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("serve")
def serve_command(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `sift-deploy export`.")],
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
    bundle: Annotated[Path, typer.Argument(help="Bundle folder written by `sift-deploy export`.")],
    images: Annotated[Path, typer.Argument(help="uint8 images: an .npz ('images', optional 'labels') or .npy, or an image folder (files, or one sub-folder per class).")],
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
