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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__, wire
from .backends import export_edge, open_cloud_runner, open_runner, runtime_versions
from .backends.base import CALIB_METHODS, ExportRequest
from .bundle import PARITY_REFERENCE, read_manifest, write_manifest
from .backends.torch.runner import torch_outputs
from .cloud import CLOUD_FILE, export_cloud
from .data.calibration import (CALIBRATION_COUNT, DEFAULT_CALIBRATION, MIN_CALIBRATION_IMAGES, load_image_file,
                               validate_images)
from .data.preprocess import model_input
from .errors import SiftError
from .fileio import atomic_dir, check_writable, sha256_file
from .parity import deployed_parity
from .profiles import Profile, load_profile
from .serve.repository import write_model_repository
from .serve.settings import settings_of_profile

PARITY_REFERENCE_COUNT = 256


@dataclass
class ExportOutcome:
    bundle: Path
    manifest: dict

    @property
    def passed(self) -> bool:
        return bool(self.manifest["parity"]["passed"]) and not self.unmet_bounds

    @property
    def unmet_bounds(self) -> list[str]:
        """The bounds `--precision auto` could not meet (empty otherwise)."""
        return list(self.manifest.get("precision_search", {}).get("unmet", []))


def default_output(arch: str, profile: Profile, precision: str) -> Path:
    return Path("bundles") / f"{arch}-{profile.name}-{precision}"


def _calibration(calib: Path | None, data_dir: Path | None, channels: int, count: int, seed: int) -> tuple[np.ndarray, dict]:
    if calib is not None and data_dir is not None:
        raise SiftError("pass either --calib or --data-dir for calibration, not both")
    if calib is not None:
        images, _, provenance = load_image_file(calib)
        images = validate_images(images, channels, calib)
        info = {"source": str(calib), "sha256": sha256_file(Path(calib)), "provenance": provenance}
    elif data_dir is not None:
        from .data.sources import load_dataset
        from .data.splits import calibration_indices, make_splits

        splits = make_splits(load_dataset(data_dir))
        idx = calibration_indices(len(splits.train), min(count, len(splits.train)), seed)
        images = validate_images(splits.train.images[idx], channels, data_dir)
        info = {"source": f"{data_dir} (train split, seed {splits.info.seed})", "sha256": None,
                "indices_seed": seed}
    else:
        all_images, _, provenance = load_image_file(DEFAULT_CALIBRATION)
        images = validate_images(all_images[:CALIBRATION_COUNT], channels, DEFAULT_CALIBRATION)
        info = {"source": f"committed {DEFAULT_CALIBRATION.name} images[:{CALIBRATION_COUNT}]",
                "sha256": sha256_file(DEFAULT_CALIBRATION), "provenance": provenance}
    images = images[:count]
    info.update(count=int(len(images)), seed=seed)
    return images, info


def _parity_images(data_dir: Path | None, use_test_split: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """The test split when a dataset is available, else the committed held-out images."""
    if use_test_split:
        from .data.sources import DEFAULT_DATA_DIR, load_dataset
        from .data.splits import make_splits

        if data_dir is not None or DEFAULT_DATA_DIR.exists():
            splits = make_splits(load_dataset(data_dir))
            return splits.test.images, splits.test.labels, f"test split of {splits.info.source}"
    images, labels, _ = load_image_file(DEFAULT_CALIBRATION)
    return images[CALIBRATION_COUNT:], labels[CALIBRATION_COUNT:], f"committed {DEFAULT_CALIBRATION.name} hold-out"


def _float_reference(model, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = torch_outputs(model.edge, inputs)
    return z, torch_outputs(model.cloud, z)


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
    on_stage: Callable[[str], None] | None = None,
    search_bounds=None,
    on_candidate=None,
) -> ExportOutcome:
    from .checkpoint import load_checkpoint

    stage = on_stage or (lambda _: None)
    profile = load_profile(target)
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
    ckpt = load_checkpoint(checkpoint, arch=arch)
    model, spec = ckpt.model, ckpt.spec
    output = Path(output) if output is not None else default_output(spec.arch, profile, precision)
    if output.exists() and not output.is_dir():
        raise SiftError(f"output path {output} is a file; choose a folder path")
    if output.exists() and not force:
        raise SiftError(f"{output} already exists; pass --force to replace it or choose another --output")
    check_writable(output, force)  # a parent that is a file: say so now, not after minutes of parity runs
    stage("preparing calibration data")
    calib_images, calib_info = _calibration(calib, data_dir, spec.in_channels, calib_count, seed)
    try:
        calib_inputs = model_input(calib_images, spec.input_size, ckpt.mean, ckpt.std)
    except SiftError as exc:  # say which images: fit_to_size does not know they are the calibration set
        raise SiftError(f"calibration images in {calib_info['source']}: {exc}") from exc
    calib_info["method"] = calib_method
    parity_images, parity_labels, parity_source = _parity_images(data_dir, parity_on_test_split)
    parity_inputs = model_input(parity_images, spec.input_size, ckpt.mean, ckpt.std)
    z_calib, _ = _float_reference(model, calib_inputs)
    z_ref, logits_ref = _float_reference(model, parity_inputs)
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
        stage(f"exporting the edge with {profile.backend} ({precision})")
        started = time.perf_counter()
        request = ExportRequest(edge=model.edge.eval(), input_shape=spec.input_shape, precision=precision,
                                calibration=calib_inputs, calib_method=calib_method, out_dir=tmp,
                                options=options, seed=seed)
        result = export_edge(profile.backend, request)
        export_seconds = time.perf_counter() - started
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
                      "input_size": spec.input_size, "num_classes": spec.num_classes,
                      "class_names": ckpt.metadata.get("class_names")},
            "target": profile.name,
            "profile": profile.as_dict(),
            "backend": profile.backend,
            "precision": precision,
            "edge_file": result.files["edge"],
            "cloud_file": CLOUD_FILE,
            "input": {"shape": [None, *spec.input_shape], "dtype": "float32", "layout": "NCHW",
                      "artifact_layout": profile.backend_options.get("layout", "NCHW"),
                      "normalization": {"mean": ckpt.mean, "std": ckpt.std},
                      "preprocessing": "uint8 image -> fit_to_size (centre zero-pad, integer nearest upscale) "
                                       "-> /255 -> (x - mean) / std"},
            "features": {"shape": [None, *z_ref.shape[1:]], "dtype": "float32", "split_point": model.split_point,
                         "wire_int8": wire_params},
            "serving": serving,
            "calibration": calib_info,
            "export": {"files": result.files, "details": result.details, "seconds": round(export_seconds, 2),
                       "seed": seed},
            "versions": {"python": platform.python_version(), **runtime_versions(profile.backend)},
        }
        if search is not None:
            from .precision.run import write_pareto

            write_pareto(search, tmp, search_bounds)
            manifest["precision_search"] = search.record
        stage("checking parity against the float model")
        runner = open_runner(tmp, manifest, threads=profile.threads, fallback=True)
        with runner, open_cloud_runner(tmp, manifest) as cloud:
            parity = deployed_parity(runner, cloud, parity_inputs, z_ref, pred_ref,
                                     parity_labels, vars(profile.parity[precision]), wire_params)
        parity["source"] = parity_source
        parity["runtime"] = runner.name
        manifest["parity"] = parity
        write_manifest(tmp, manifest)
    return ExportOutcome(output, read_manifest(output))
