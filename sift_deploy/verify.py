"""`sift-deploy verify BUNDLE`: check the manifest's signature (with a public key), re-hash every
file and re-run parity on the bundle's stored reference images (no torch needed: the float
reference features travel inside the bundle).

Where the bundle's runtime is not installed (a Jetson bundle on an x86 CI box) the files are still
checked; parity is reported as not re-run, with how to run it, unless `require_parity`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .backends import get_backend, open_cloud_runner, open_runner
from .bundle import PARITY_REFERENCE, MANIFEST, SIGNATURE, read_manifest, verify_files
from .data.preprocess import Normalization, model_input
from .errors import SiftError
from .parity import deployed_parity


def _signature(bundle_dir: Path, public_key) -> dict:
    if public_key is not None:
        from .signing import check_signature

        return check_signature(bundle_dir, public_key)
    signed = (bundle_dir / SIGNATURE).is_file()
    return {"status": "not checked" if signed else "unsigned", "key_id": None, "problem": None}


def _parity_not_runnable(manifest: dict, bundle: Path) -> str | None:
    """Why parity cannot run here and how to run it; None when the bundle's runtime is available."""
    backend = get_backend(manifest["backend"])
    available, why = backend.available()
    if available:
        return None
    how = f"run `sift-deploy verify {bundle}` where {backend.label} is installed ({backend.install_hint})"
    if backend.stand_ins:
        how += f", or pass --runtime {next(iter(backend.stand_ins))} for a labelled stand-in here"
    return f"{why}; {how}"


def verify_bundle(bundle_dir: Path, threads: int | None = None, runtime: str | None = None,
                  public_key: Path | None = None, require_parity: bool = False) -> dict:
    bundle_dir = Path(bundle_dir)
    key = None
    if public_key is not None:
        from .signing import load_public_key

        key = load_public_key(public_key)
    manifest = read_manifest(bundle_dir)
    report: dict = {"bundle": str(bundle_dir), "target": manifest.get("target"), "backend": manifest["backend"],
                    "precision": manifest["precision"], "files_checked": len(manifest["files"]), "file_problems": [],
                    "signature": _signature(bundle_dir, key)}
    if report["signature"]["problem"]:  # an edited manifest's hashes and thresholds prove nothing
        report["passed"] = False
        return report
    report["file_problems"] = verify_files(bundle_dir, manifest)
    if report["file_problems"]:
        report["passed"] = False
        return report
    try:  # the files are intact, but the manifest itself may have been edited by hand
        norm = manifest["input"]["normalization"]
        normalization = Normalization.from_record(norm, int(manifest["model"]["in_channels"]))
        mean, std, input_size = normalization.mean, normalization.std, int(manifest["model"]["input_size"])
        threads = threads or int(manifest["profile"]["threads"])
        thresholds = manifest["profile"]["parity"][manifest["precision"]]
        wire_params = manifest["features"]["wire_int8"]
        cloud_file = manifest["cloud_file"]
        if not isinstance(manifest["export"]["details"], dict):
            raise TypeError("export.details is not a table")
    except (KeyError, TypeError, ValueError, SiftError) as exc:
        raise SiftError(f"{bundle_dir / MANIFEST} is missing or has a malformed entry ({type(exc).__name__}: {exc}); "
                        f"re-export the bundle") from exc
    if runtime is None:
        missing = _parity_not_runnable(manifest, bundle_dir)
        if missing is not None:
            if require_parity:
                raise SiftError(f"parity cannot be re-run here (--require-parity): {missing}")
            report["parity_skipped"] = missing
            report["passed"] = True
            return report
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
