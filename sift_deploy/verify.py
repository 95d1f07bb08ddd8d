"""`sift-deploy verify BUNDLE`: re-hash every file and re-run parity on the bundle's stored
reference images (no torch needed: the float reference features travel inside the bundle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends import open_cloud_runner, open_runner
from .bundle import PARITY_REFERENCE, MANIFEST, read_manifest, verify_files
from .data.preprocess import model_input
from .errors import SiftError
from .parity import deployed_parity


def verify_bundle(bundle_dir: Path, threads: int | None = None, runtime: str | None = None) -> dict:
    bundle_dir = Path(bundle_dir)
    manifest = read_manifest(bundle_dir)
    problems = verify_files(bundle_dir, manifest)
    report: dict = {"bundle": str(bundle_dir), "target": manifest.get("target"), "backend": manifest["backend"],
                    "precision": manifest["precision"], "files_checked": len(manifest["files"]), "file_problems": problems}
    if problems:
        report["passed"] = False
        return report
    try:  # the files are intact, but the manifest itself may have been edited by hand
        norm = manifest["input"]["normalization"]
        mean, std, input_size = float(norm["mean"]), float(norm["std"]), int(manifest["model"]["input_size"])
        threads = threads or int(manifest["profile"]["threads"])
        thresholds = manifest["profile"]["parity"][manifest["precision"]]
        wire_params = manifest["features"]["wire_int8"]
        cloud_file = manifest["cloud_file"]
        if not isinstance(manifest["export"]["details"], dict):
            raise TypeError("export.details is not a table")
    except (KeyError, TypeError, ValueError) as exc:
        raise SiftError(f"{bundle_dir / MANIFEST} is missing or has a malformed entry ({type(exc).__name__}: {exc}); "
                        f"re-export the bundle") from exc
    if PARITY_REFERENCE not in manifest["files"]:
        raise SiftError(f"{bundle_dir} has no {PARITY_REFERENCE}, so parity cannot be re-run; re-export the bundle")
    with np.load(bundle_dir / PARITY_REFERENCE, allow_pickle=False) as ref:
        images, labels, z_ref, pred_ref = ref["images"], ref["labels"], ref["z_ref"], ref["pred_ref"]
    inputs = model_input(images, input_size, mean, std)
    cloud = open_cloud_runner(bundle_dir, {"cloud_file": cloud_file}, threads)
    try:
        cloud.activate()
        report["cloud"] = "onnxruntime"
    except SiftError as exc:
        cloud = None
        report["cloud"] = f"skipped: {exc}"
    try:
        with open_runner(bundle_dir, manifest, threads=threads, runtime=runtime) as runner:
            parity = deployed_parity(runner, cloud, inputs, z_ref, pred_ref, labels, thresholds, wire_params)
            parity["runtime"] = runner.name
    finally:
        if cloud is not None:
            cloud.deactivate()
    report["parity"] = parity
    report["passed"] = parity["passed"]
    if "precision_search" in manifest:
        report["precision_search"] = manifest["precision_search"]
    return report
