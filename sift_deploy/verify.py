"""`sift-deploy verify BUNDLE`: re-hash every file and re-run parity on the bundle's stored
reference images (no torch needed: the float reference features travel inside the bundle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends import open_runner
from .bundle import read_manifest, verify_files
from .cloud import CloudRunner
from .data.preprocess import model_input
from .errors import SiftError
from .export import PARITY_REFERENCE
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
    with np.load(bundle_dir / PARITY_REFERENCE, allow_pickle=False) as ref:
        images, labels, z_ref, pred_ref = ref["images"], ref["labels"], ref["z_ref"], ref["pred_ref"]
    norm = manifest["input"]["normalization"]
    inputs = model_input(images, manifest["model"]["input_size"], norm["mean"], norm["std"])
    threads = threads or manifest["profile"]["threads"]
    try:
        cloud = CloudRunner(bundle_dir / manifest["cloud_file"], threads)
        report["cloud"] = "onnxruntime"
    except SiftError as exc:
        cloud = None
        report["cloud"] = f"skipped: {exc}"
    thresholds = manifest["profile"]["parity"][manifest["precision"]]
    with open_runner(bundle_dir, manifest, threads=threads, runtime=runtime) as runner:
        parity = deployed_parity(runner, cloud, inputs, z_ref, pred_ref, labels, thresholds,
                                 manifest["features"]["wire_int8"])
        parity["runtime"] = runner.name
    report["parity"] = parity
    report["passed"] = parity["passed"]
    return report
