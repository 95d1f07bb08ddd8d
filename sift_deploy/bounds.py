"""Bounds of `sift-deploy check` (TOML, schema_version 1): what the deployed artifact may lose in
accuracy and gain in leakage against the float model, optional absolute caps, and the minimum
strength the attack must show against the unprotected twin. Unknown keys and wrong types are
errors, so a typo never silently disables a bound."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .documents import parse_document
from .documents.bounds import BoundsDocument
from .errors import SiftError

SCHEMA_VERSION = 1
DEFAULT_BOUNDS = Path(__file__).resolve().parent / "default-bounds.toml"
TABLES = tuple(name for name in BoundsDocument.model_fields if name != "schema_version")


def parse_bounds(doc: dict, source: str) -> dict[str, dict[str, float]]:
    """table -> key -> value, with only the keys the file sets."""
    document = parse_document(BoundsDocument, doc, f"bounds file {source}")
    return {table: getattr(document, table).model_dump(exclude_none=True) for table in TABLES}


def load_bounds(path: Path | None = None) -> dict[str, dict[str, float]]:
    path = Path(path) if path is not None else DEFAULT_BOUNDS
    if not path.is_file():
        raise SiftError(f"bounds file {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SiftError(f"bounds file {path} is not valid TOML: {exc}") from exc
    return parse_bounds(doc, str(path))


def caps_from_report(report: dict, bounds: dict[str, dict[str, float]]) -> str:
    """A bounds file (TOML text) that keeps `bounds` and adds absolute caps at the float model's
    measured leakage plus the allowed increase: gate another bundle (a retrained or swapped edge)
    against the leakage of the model checked in `report`."""
    attack, info, leak = report["attack"], report["information"], bounds["leakage"]
    caps = {"max_ssim": attack["float"]["ssim"]["high"] + leak["max_ssim_increase"]}
    if "max_psnr_increase_db" in leak:
        caps["max_psnr_db"] = attack["float"]["psnr"]["high"] + leak["max_psnr_increase_db"]
    if "max_mi_increase_nats" in leak:
        caps["max_mi_nats"] = info["float"]["mi_nats"] + leak["max_mi_increase_nats"]
    merged = {table: dict(values) for table, values in bounds.items()}
    merged["leakage"].update({key: round(value, 4) for key, value in caps.items()})
    lines = [f"# Caps from the float model checked in {report['bundle']} (seed {report['seed']}, budget "
             f"{report['budget']['name']}): its measured leakage plus the allowed increase.",
             f"schema_version = {SCHEMA_VERSION}"]
    for table, values in merged.items():
        lines += ["", f"[{table}]"] + [f"{key} = {value!r}" for key, value in values.items()]
    text = "\n".join(lines) + "\n"
    parse_bounds(tomllib.loads(text), "written caps")  # what we write must load
    return text
