"""Bounds of `sift-deploy check` (TOML, schema_version 1): what the deployed artifact may lose in
accuracy and gain in leakage against the float model, optional absolute caps, and the minimum
strength the attack must show against the unprotected twin. Unknown keys and wrong types are
errors, so a typo never silently disables a bound."""

from __future__ import annotations

import tomllib
from pathlib import Path

from .errors import SiftError

SCHEMA_VERSION = 1
DEFAULT_BOUNDS = Path(__file__).resolve().parent / "default-bounds.toml"
SCHEMA: dict[str, dict[str, bool]] = {  # table -> key -> required
    "accuracy": {"max_drop_points": True, "max_wire_int8_drop_points": False},
    "leakage": {"max_ssim_increase": True, "max_psnr_increase_db": False, "max_mi_increase_nats": False,
                "max_ssim": False, "max_psnr_db": False, "max_mi_nats": False},
    "attack": {"min_twin_ssim": True},
}


def parse_bounds(doc: dict, source: str) -> dict[str, dict[str, float]]:
    where = f"bounds file {source}"
    unknown = set(doc) - set(SCHEMA) - {"schema_version"}
    if unknown:
        raise SiftError(f"{where} has unknown table(s) {', '.join(sorted(unknown))}; allowed: {', '.join(SCHEMA)}")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise SiftError(f"{where} needs schema_version = {SCHEMA_VERSION}, found {doc.get('schema_version')!r}")
    bounds: dict[str, dict[str, float]] = {}
    for table, keys in SCHEMA.items():
        values = doc.get(table, {})
        if not isinstance(values, dict):
            raise SiftError(f"{where}: [{table}] must be a table")
        extra = set(values) - set(keys)
        if extra:
            raise SiftError(f"{where}: [{table}] has unknown key(s) {', '.join(sorted(extra))}; allowed: {', '.join(keys)}")
        bounds[table] = {}
        for key, required in keys.items():
            if key not in values:
                if required:
                    raise SiftError(f"{where}: [{table}] lacks '{key}'")
                continue
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SiftError(f"{where}: [{table}] {key} must be a number, got {type(value).__name__} {value!r}")
            bounds[table][key] = float(value)
    return bounds


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
