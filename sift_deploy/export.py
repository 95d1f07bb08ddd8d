"""`sift-deploy export`: checkpoint + target profile + calibration images -> verified bundle.

Steps: load the checkpoint and the profile; prepare calibration images (committed set, a file, or
the train split of --data-dir); let the profile's backend export the edge; export the float cloud
to ONNX; fit the int8 wire quantization; run parity against the float PyTorch edge on held-out
real images; write the manifest with every file's hash. All of it happens in a temporary folder
that is renamed into place at the end, so a failure leaves nothing behind.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, wire
from .backends import export_edge, get_backend, open_cloud_runner, open_runner, runtime_versions
from .backends.base import CALIB_METHODS, ExportRequest
from .bundle import PARITY_REFERENCE, read_manifest, write_manifest
from .backends.torch.runner import torch_outputs
from .cloud import CLOUD_FILE, export_cloud
from .data.calibration import (CALIBRATION_COUNT, DEFAULT_CALIBRATION, MIN_CALIBRATION_IMAGES, load_image_file,
                               validate_images)
from .data.preprocess import Normalization, model_input
from .errors import SiftError
from .fileio import atomic_dir, check_writable, sha256_file
from .models.summary import summarize
from .parity import agreement_interval, deployed_parity
from .profiles import Profile, load_profile
from .serve.repository import write_model_repository
from .serve.settings import settings_of_profile

PARITY_REFERENCE_COUNT = 256
FLOAT_REFERENCE_CHUNK = 1000
# Parity at export runs on a uniform sample of the test split by default: 3,000 images give a 95 %
# interval of about +-0.25 points at 99.5 % agreement, narrower than the int8 bound's margin
# (>= 99 %); `parity_images="all"` runs the whole split (10,000 Fashion-MNIST test images).
PARITY_SAMPLE = 3000


@dataclass
class ExportOutcome:
    bundle: Path
    manifest: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.manifest["parity"]["passed"]) and not self.unmet_bounds

    @property
    def unmet_bounds(self) -> list[str]:
        """The bounds `--precision auto` could not meet (empty otherwise)."""
        return list(self.manifest.get("precision_search", {}).get("unmet", []))


def default_output(arch: str, profile: Profile, precision: str, cut: str | None = None) -> Path:
    return Path("bundles") / (f"{arch}-{profile.name}-{precision}" + (f"-at-{cut}" if cut else ""))


def _calibration(calib: Path | None, splits, channels: int, count: int, seed: int) -> tuple[np.ndarray, dict]:
    """From --calib, from the train split of --data-dir (cut with the checkpoint's split seed), or the committed set."""
    if calib is not None:
        images, _, provenance = load_image_file(calib)
        images = validate_images(images, channels, calib)
        info = {"source": str(calib), "sha256": sha256_file(Path(calib)), "provenance": provenance}
    elif splits is not None:
        from .data.splits import calibration_indices

        idx = calibration_indices(len(splits.train), min(count, len(splits.train)), seed)
        images = validate_images(splits.train.images[idx], channels, splits.info.source)
        info = {"source": f"{splits.info.source} (train split, split seed {splits.info.seed})", "sha256": None,
                "indices_seed": seed}
    else:
        all_images, _, provenance = load_image_file(DEFAULT_CALIBRATION)
        images = validate_images(all_images[:CALIBRATION_COUNT], channels, DEFAULT_CALIBRATION)
        info = {"source": f"committed {DEFAULT_CALIBRATION.name} images[:{CALIBRATION_COUNT}]",
                "sha256": sha256_file(DEFAULT_CALIBRATION), "provenance": provenance}
    images = images[:count]
    info.update(count=int(len(images)), seed=seed)
    return images, info


def _parity_images(splits, use_test_split: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The test split when a dataset is available, else the committed held-out images."""
    if use_test_split and splits is not None:
        return splits.test.images, splits.test.labels, f"test split of {splits.info.source}"
    images, labels, _ = load_image_file(DEFAULT_CALIBRATION)
    return images[CALIBRATION_COUNT:], labels[CALIBRATION_COUNT:], f"committed {DEFAULT_CALIBRATION.name} hold-out"


def _check_output(output: Path, force: bool) -> None:
    if output.exists() and not output.is_dir():
        raise SiftError(f"output path {output} is a file; choose a folder path")
    if output.exists() and not force:
        raise SiftError(f"{output} already exists; pass --force to replace it or choose another --output")
    check_writable(output, force)  # under a file, read-only, /proc: say so before the work


def _artifact_entry(result, role: str) -> dict:
    """{"artifact": the exported file's own `role` tensor}, or nothing for a backend that does not read it back."""
    return {"artifact": result.io[role]} if role in result.io else {}


def export_data(ckpt, data_dir: Path | None, calib: Path | None, use_test_split: bool) -> tuple[object, list[str]]:
    """The splits export draws calibration (train) and parity (test) images from, cut with the seed and sizes the
    checkpoint records, and warnings. Refuses data the model cannot have been trained on: the default
    Fashion-MNIST for a checkpoint that records another data set, or a data set of another class count."""
    from .data.sources import DEFAULT_DATA_DIR, FASHION_MNIST, load_dataset
    from .data.splits import make_splits, split_settings

    warnings: list[str] = []
    if calib is not None and data_dir is not None:
        raise SiftError("pass either --calib or --data-dir for calibration, not both")
    recorded = ckpt.dataset
    splits = None
    if data_dir is not None or (use_test_split and DEFAULT_DATA_DIR.exists()):
        splits = make_splits(load_dataset(data_dir), **split_settings(recorded))
    name = splits.info.dataset if splits is not None else FASHION_MNIST
    source = splits.info.source if splits is not None else f"committed {DEFAULT_CALIBRATION.name}"
    trained_on = recorded.get("dataset")
    if data_dir is None:
        if trained_on is not None and trained_on != FASHION_MNIST:
            raise SiftError(f"{ckpt.path.name} was trained on {trained_on} ({recorded.get('source')}), but without "
                            f"--data-dir export calibrates and checks parity on Fashion-MNIST; pass --data-dir "
                            f"{recorded.get('source')}")
        if trained_on is None:
            warnings.append(f"{ckpt.path.name} records no data set: calibration and parity use Fashion-MNIST "
                            f"({source}); pass --data-dir with the data the model was trained on")
    elif trained_on is not None and trained_on != name:
        warnings.append(f"{data_dir} holds {name}, but {ckpt.path.name} was trained on {trained_on} "
                        f"({recorded.get('source')}): calibration and parity use the data given")
    classes = len(splits.class_names) if splits is not None else ckpt.spec.num_classes if trained_on else 10
    if classes != ckpt.spec.num_classes:
        raise SiftError(f"the model has {ckpt.spec.num_classes} classes but {name} ({source}) has {classes}; "
                        f"export it with the data set it was trained on (--data-dir)")
    if splits is not None and splits.train.images.shape[1] != ckpt.spec.in_channels:
        raise SiftError(f"{name} ({source}) has {splits.train.images.shape[1]}-channel images but the model takes "
                        f"{ckpt.spec.in_channels}; pass --data-dir with the model's data set")
    return splits, warnings


# The compute-floor probe: one representative conv, exported by the bundle's own backend at the bundle's
# precision, so `bench` measures the runtime's peak MAC rate for that precision on the device it runs on.
FLOOR_PROBE_SHAPE = (64, 56, 56)
FLOOR_PROBE_MACS = 64 * 64 * 9 * 56 * 56  # 115.6 M
FLOOR_PROBE_DIR = "probe"


def export_floor_probe(backend: str, precision: str, out_dir: Path, options: dict, seed: int) -> dict:
    """Conv2d(64, 64, 3, padding=1) on 1x64x56x56 through `backend` at `precision` into out_dir/probe/."""
    import torch

    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    calib = np.random.default_rng(seed).standard_normal((8, *FLOOR_PROBE_SHAPE)).astype(np.float32)
    folder = Path(out_dir) / FLOOR_PROBE_DIR
    folder.mkdir()
    probe_options = {**options, "float_tail": False, "batch_variants": [], "measure": False, "int8_min_cosine": None,
                     "int8_min_macs": 0, "int8_min_in_channels": 1, "load_check": False}
    try:
        result = export_edge(backend, ExportRequest(edge=conv, input_shape=FLOOR_PROBE_SHAPE, precision=precision,
                                                    calibration=calib, calib_method="minmax", out_dir=folder,
                                                    options=probe_options, seed=seed))
    except Exception as exc:  # noqa: BLE001 - no probe only costs bench its floor figure
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return {"skipped": f"the {backend} backend could not export the probe conv ({str(exc).splitlines()[0][:200]})"}
    return {"file": result.files["edge"], "details": result.details, "macs": FLOOR_PROBE_MACS,
            "input_shape": [1, *FLOOR_PROBE_SHAPE], "layer": "Conv2d(64, 64, 3, padding=1), random init",
            "folder": FLOOR_PROBE_DIR}


def parity_sample_size(value: int | str | None) -> int | None:
    """None: every image; else the number of images to draw (`--parity-images N|all`)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise SiftError(f"--parity-images must be a number of images or 'all'; got {value!r}") from None
    if n < PARITY_REFERENCE_COUNT:
        raise SiftError(f"--parity-images must be at least {PARITY_REFERENCE_COUNT} (or 'all'); got {n}")
    return n


def _sample(images: np.ndarray, labels: np.ndarray, count: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    total = len(images)
    if count is None or count >= total:
        return images, labels, {"images": total, "of": total, "how": "all"}
    index = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    return images[index], labels[index], {"images": int(count), "of": total, "seed": seed,
                                          "how": "uniform without replacement (numpy default_rng(seed))"}


def _float_reference(model, inputs: np.ndarray, report: Callable[[int, int], None]) -> tuple[np.ndarray, np.ndarray]:
    """z and logits of the float model, in chunks so that a long run reports its progress."""
    zs, logits = [], []
    for start in range(0, len(inputs), FLOAT_REFERENCE_CHUNK):
        z = torch_outputs(model.edge, inputs[start:start + FLOAT_REFERENCE_CHUNK])
        zs.append(z)
        logits.append(torch_outputs(model.cloud, z))
        report(start + len(z), len(inputs))
    return np.concatenate(zs), np.concatenate(logits)


def export_bundle(
    checkpoint: Path | None,
    target: str,
    precision: str | None = None,
    calib: Path | None = None,
    data_dir: Path | None = None,
    calib_method: str = "minmax",
    output: Path | None = None,
    force: bool = False,
    seed: int = 0,
    calib_count: int = CALIBRATION_COUNT,
    parity_on_test_split: bool = True,
    arch: str | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    sign_key: Path | None = None,
    input_size: int | None = None,
    normalization: Normalization | None = None,
    split_at: str | None = None,
    parity_images: int | str | None = PARITY_SAMPLE,
    search_bounds=None,
    on_candidate=None,
    perturbation=None,
) -> ExportOutcome:
    """on_progress(stage, done, total) hears what runs (total 0: a stage without a count)."""
    from .checkpoint import load_checkpoint

    progress = on_progress or (lambda *_: None)

    def stage(name: str) -> None:
        progress(name, 0, 0)

    if output is not None:  # an unwritable output fails now, not after minutes of export and parity
        _check_output(Path(output), force)
    signer = None
    if sign_key is not None:  # a wrong key fails now too
        from .signing import load_private_key

        signer = load_private_key(sign_key)
    profile = load_profile(target)
    sample_size = parity_sample_size(parity_images)
    serving_settings = settings_of_profile(profile)  # a bad [serving] table fails now, not after the export
    precision = precision or profile.default_precision
    auto = precision == "auto"
    if auto and "int8" not in profile.precisions:
        raise SiftError(f"--precision auto chooses int8 layers, and target {profile.name} has no int8")
    if not auto and precision not in profile.precisions:
        raise SiftError(f"target {profile.name} ({profile.backend}) supports {', '.join(profile.precisions)}, not {precision}")
    if calib_method not in CALIB_METHODS:
        raise SiftError(f"unknown calibration method {calib_method!r}; use {', '.join(CALIB_METHODS)}")
    if calib_count < MIN_CALIBRATION_IMAGES:
        raise SiftError(f"--calib-count must be at least {MIN_CALIBRATION_IMAGES}")
    stage("loading checkpoint")
    ckpt = load_checkpoint(checkpoint, arch=arch, input_size=input_size, normalization=normalization, split_at=split_at)
    model, spec = ckpt.model, ckpt.spec
    output = Path(output) if output is not None else default_output(spec.arch, profile, precision, split_at)
    _check_output(output, force)
    stage("reading calibration images")
    splits, warnings = export_data(ckpt, data_dir, calib, parity_on_test_split)
    warnings = list(ckpt.notes) + list(ckpt.warnings) + warnings
    calib_images, calib_info = _calibration(calib, splits if data_dir is not None else None, spec.in_channels,
                                            calib_count, seed)
    try:
        calib_inputs = model_input(calib_images, spec.input_size, ckpt.mean, ckpt.std)
    except SiftError as exc:  # say which images: fit_to_size does not know they are the calibration set
        raise SiftError(f"calibration images in {calib_info['source']}: {exc}") from exc
    calib_info["method"] = calib_method
    stage("reading parity images")
    parity_images, parity_labels, parity_source = _parity_images(splits, parity_on_test_split)
    parity_images, parity_labels, parity_sample = _sample(parity_images, parity_labels, sample_size, seed)
    parity_inputs = model_input(parity_images, spec.input_size, ckpt.mean, ckpt.std)
    z_calib, _ = _float_reference(model, calib_inputs, lambda done, total: progress(
        f"running the float model on {total:,} calibration images", done, total))
    z_ref, logits_ref = _float_reference(model, parity_inputs, lambda done, total: progress(
        f"running the float model on {total:,} parity images", done, total))
    pred_ref = logits_ref.argmax(1)
    wire_params = wire.fit_wire_quantization(z_calib)
    search = None
    options = dict(profile.backend_options)
    if auto:
        from .precision.run import auto_precision, search_bounds as default_bounds

        search_bounds = search_bounds or default_bounds()
        stage("searching per-layer precisions")
        search = auto_precision(ckpt, profile, calib_inputs, calib_method, seed, data_dir, search_bounds, on_candidate)
        options["int8_layers"] = search.result.int8_layers
        precision = "int8"

    with atomic_dir(output, force=force) as tmp:
        calibrated = f", {calib_method} calibration on {len(calib_inputs)} images" if precision == "int8" else ""
        stage(f"exporting the edge with {get_backend(profile.backend).label} ({precision}{calibrated})")
        started = time.perf_counter()
        request = ExportRequest(edge=model.edge.eval(), input_shape=spec.input_shape, precision=precision,
                                calibration=calib_inputs, calib_method=calib_method, out_dir=tmp,
                                options=options, seed=seed)
        result = export_edge(profile.backend, request)
        export_seconds = time.perf_counter() - started
        stage("exporting the compute-floor probe")
        floor_probe = export_floor_probe(profile.backend, precision, tmp, dict(profile.backend_options), seed)
        stage("exporting the float cloud")
        export_cloud(model.cloud, tuple(z_ref.shape[1:]), tmp / CLOUD_FILE, opset=int(profile.backend_options.get("opset", 17)))
        stage("writing the Triton model repository")
        serving = write_model_repository(tmp, CLOUD_FILE, tuple(z_ref.shape[1:]), spec.num_classes, wire_params,
                                         serving_settings, threads=profile.threads)
        (tmp / "parity").mkdir()
        keep = np.arange(min(PARITY_REFERENCE_COUNT, len(parity_images)))
        np.savez_compressed(tmp / PARITY_REFERENCE, images=parity_images[keep], labels=parity_labels[keep],
                            z_ref=z_ref[keep], pred_ref=pred_ref[keep])
        (tmp / "profile.toml").write_text(Path(profile.source).read_text())
        manifest = {
            "tool": {"name": "sift-deploy", "version": __version__},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_checkpoint": {"path": str(ckpt.path), "sha256": ckpt.sha256, "official_format": ckpt.official,
                                  "metadata": ckpt.metadata},
            "model": {"arch": spec.arch, "split_point": model.split_point, "in_channels": spec.in_channels,
                      "input_size": spec.input_size, "num_classes": spec.num_classes, "width": spec.width,
                      "class_names": ckpt.metadata.get("class_names"), "edge_macs": summarize(model).edge.macs},
            "target": profile.name,
            "profile": profile.as_dict(),
            "backend": profile.backend,
            "precision": precision,
            "edge_file": result.files["edge"],
            "cloud_file": CLOUD_FILE,
            "input": {"shape": [None, *spec.input_shape], "dtype": "float32", "layout": "NCHW",
                      "artifact_layout": profile.backend_options.get("layout", "NCHW"),
                      **_artifact_entry(result, "input"),
                      "normalization": ckpt.normalization.as_dict(),
                      "preprocessing": "uint8 image -> fit_to_size (centre zero-pad, integer nearest upscale) "
                                       "-> /255 -> (x - mean) / std"},
            "features": {"shape": [None, *z_ref.shape[1:]], "dtype": "float32", **_artifact_entry(result, "output"),
                         "split_point": model.split_point, "wire_int8": wire_params,
                         **({"perturbation": perturbation.as_manifest()} if perturbation is not None
                            and perturbation.active else {})},
            "serving": serving,
            "floor_probe": floor_probe,
            "calibration": calib_info,
            "export": {"files": result.files, "details": result.details, "seconds": round(export_seconds, 2),
                       "seed": seed},
            "versions": {"python": platform.python_version(), **runtime_versions(profile.backend)},
        }
        if search is not None:
            from .precision.run import write_pareto

            write_pareto(search, tmp, search_bounds)
            manifest["precision_search"] = search.record
        runner = open_runner(tmp, manifest, threads=profile.threads, fallback=True)
        parity_stage = f"checking parity on {len(parity_inputs):,} images ({runner.name})"
        with runner, open_cloud_runner(tmp, manifest) as cloud:
            parity = deployed_parity(runner, cloud, parity_inputs, z_ref, pred_ref,
                                     parity_labels, profile.parity[precision].thresholds(), wire_params,
                                     on_batch=lambda done, total: progress(parity_stage, done, total))
        parity["source"] = parity_source
        parity["sample"] = parity_sample
        parity.update(agreement_interval(parity, parity_sample))
        parity["runtime"] = runner.name
        manifest["parity"] = parity
        if warnings:
            manifest["warnings"] = warnings
        write_manifest(tmp, manifest)
        if signer is not None:
            from .signing import sign_bundle

            sign_bundle(tmp, signer)
    return ExportOutcome(output, read_manifest(output), list(ckpt.warnings))
