"""Device profiles (targets): TOML data that picks a backend and sets precision, threads, opset,
layout, parity thresholds and latency/memory budgets. `--target jetson|rpi|x86` are aliases of the
shipped profiles in `sift_deploy/targets/`; any other value is read as the path of a user's TOML.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backends.base import PRECISIONS
from .errors import SiftError

SCHEMA_VERSION = 1
TARGETS_DIR = Path(__file__).resolve().parent / "targets"
ALIASES = {"x86": "x86-64", "rpi": "rpi4", "jetson": "jetson-orin-nano-jp6"}
BACKENDS = ("onnxruntime", "litert", "tensorrt")
PARITY_KEYS = {"min_cosine": float, "max_abs": float, "min_top1_agreement": float}
BUDGET_KEYS = {"latency_p50_ms": float, "peak_memory_mb": float}
OPTION_TYPES = {"opset": int, "layout": str, "trt_version": str}
LAYOUTS = ("NCHW", "NHWC")
TOP_KEYS = {"schema_version", "name", "description", "backend", "default_precision", "threads", "backend_options",
            "parity", "budgets", "serving"}


@dataclass
class Parity:
    min_cosine: float
    max_abs: float
    min_top1_agreement: float


@dataclass
class Profile:
    name: str
    description: str
    backend: str
    default_precision: str
    threads: int
    backend_options: dict
    parity: dict[str, Parity]
    budgets: dict[str, float]
    source: str = ""
    schema_version: int = SCHEMA_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def precisions(self) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS if p in self.parity)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def _expect(table: dict, key: str, kind: type, where: str):
    if key not in table:
        raise SiftError(f"{where} lacks the field '{key}'")
    value = table[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SiftError(f"{where}: '{key}' must be {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def parse_profile(doc: dict, source: str) -> Profile:
    where = f"profile {source}"
    unknown = set(doc) - TOP_KEYS
    if unknown:
        raise SiftError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(TOP_KEYS))}")
    version = _expect(doc, "schema_version", int, where)
    if version != SCHEMA_VERSION:
        raise SiftError(f"{where} has schema_version {version}; this sift-deploy reads {SCHEMA_VERSION}")
    backend = _expect(doc, "backend", str, where)
    if backend not in BACKENDS:
        raise SiftError(f"{where}: backend '{backend}' is unknown; use one of {', '.join(BACKENDS)}")
    threads = _expect(doc, "threads", int, where)
    if threads < 1:
        raise SiftError(f"{where}: threads must be at least 1")
    parity_doc = _expect(doc, "parity", dict, where)
    parity = {}
    for precision, table in parity_doc.items():
        if precision not in PRECISIONS:
            raise SiftError(f"{where}: [parity.{precision}] is not a precision; use {', '.join(PRECISIONS)}")
        if not isinstance(table, dict):
            raise SiftError(f"{where}: [parity.{precision}] must be a table")
        extra = set(table) - set(PARITY_KEYS)
        if extra:
            raise SiftError(f"{where}: [parity.{precision}] has unknown field(s) {', '.join(sorted(extra))}")
        parity[precision] = Parity(**{k: _expect(table, k, t, f"{where} [parity.{precision}]") for k, t in PARITY_KEYS.items()})
    default_precision = _expect(doc, "default_precision", str, where)
    if default_precision not in parity:
        raise SiftError(f"{where}: default_precision '{default_precision}' has no [parity.{default_precision}] table")
    budgets_doc = _expect(doc, "budgets", dict, where)
    extra = set(budgets_doc) - set(BUDGET_KEYS)
    if extra:
        raise SiftError(f"{where}: [budgets] has unknown field(s) {', '.join(sorted(extra))}")
    budgets = {k: _expect(budgets_doc, k, t, f"{where} [budgets]") for k, t in BUDGET_KEYS.items() if k in budgets_doc}
    options = doc.get("backend_options", {})
    if not isinstance(options, dict):
        raise SiftError(f"{where}: [backend_options] must be a table")
    for key, kind in OPTION_TYPES.items():  # the options every backend reads; others are backend-specific
        if key in options:
            _expect(options, key, kind, f"{where} [backend_options]")
    if "layout" in options and options["layout"].upper() not in LAYOUTS:
        raise SiftError(f"{where} [backend_options]: layout '{options['layout']}' is unknown; use {' or '.join(LAYOUTS)}")
    return Profile(
        name=_expect(doc, "name", str, where), description=str(doc.get("description", "")), backend=backend,
        default_precision=default_precision, threads=threads, backend_options=dict(options), parity=parity,
        budgets=budgets, source=source, extra={"serving": doc["serving"]} if "serving" in doc else {},
    )


def load_profile(target: str) -> Profile:
    """`target` is an alias (x86, rpi, jetson), a shipped profile name, or the path of a TOML file."""
    name = ALIASES.get(target, target)
    shipped = TARGETS_DIR / f"{name}.toml"
    if shipped.exists():
        path = shipped
    elif target.endswith(".toml") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise SiftError(f"profile file {path} does not exist")
    else:
        raise SiftError(f"unknown target '{target}'; use {', '.join(sorted(ALIASES))}, one of "
                        f"{', '.join(available_targets())}, or the path of a profile .toml")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SiftError(f"profile {path} is not valid TOML: {exc}") from exc
    return parse_profile(doc, str(path))
