"""Device profiles (targets): TOML data that picks a backend and sets precision, threads, opset,
layout, parity thresholds and latency/memory budgets. `--target jetson|rpi|x86` are aliases of the
shipped profiles in `sift_deploy/targets/`; any other value is read as the path of a user's TOML.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .backends import export_targets, get_backend
from .backends.base import PRECISIONS
from .documents import DocumentError, parse_document
from .documents.profile import ProfileDocument
from .errors import SiftError

SCHEMA_VERSION = 1
TARGETS_DIR = Path(__file__).resolve().parent / "targets"
ALIASES = {"x86": "x86-64", "rpi": "rpi4", "jetson": "jetson-orin-nano-jp6"}


@dataclass
class Parity:
    min_cosine: float
    min_top1_agreement: float
    max_abs: float | None = None
    max_abs_relative: float | None = None

    def thresholds(self) -> dict:
        """The bounds this table sets (a max-abs form it leaves out is not in the dict)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


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
        d["parity"] = {precision: table.thresholds() for precision, table in self.parity.items()}
        return d


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def parse_profile(doc: dict, source: str) -> Profile:
    where = f"profile {source}"
    document = parse_document(ProfileDocument, doc, where)
    if document.backend not in export_targets():
        raise DocumentError(f"{where}: backend '{document.backend}' is unknown; use one of {', '.join(export_targets())}",
                            "backend")
    unsupported = sorted(set(document.parity) - set(get_backend(document.backend).precisions))
    if unsupported:
        raise DocumentError(f"{where}: backend '{document.backend}' does not export {', '.join(unsupported)}; "
                            f"drop [parity.{unsupported[0]}]", "parity")
    return Profile(
        name=document.name, description=document.description, backend=document.backend,
        default_precision=document.default_precision, threads=document.threads,
        backend_options=document.backend_options.model_dump(exclude_unset=True),
        parity={precision: Parity(**table.model_dump(exclude_none=True)) for precision, table in document.parity.items()},
        budgets=document.budgets.model_dump(exclude_none=True), source=source,
        extra={"serving": document.serving.model_dump(exclude_unset=True)} if document.serving is not None else {},
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


def describe_targets() -> list[dict]:
    """One row per shipped profile, for `sift-deploy targets`: what `--target NAME` picks."""
    aliases = {name: alias for alias, name in ALIASES.items()}
    rows = []
    for name in available_targets():
        profile = load_profile(name)
        rows.append({"name": profile.name, "alias": aliases.get(name), "backend": profile.backend,
                     "precisions": list(profile.precisions), "default_precision": profile.default_precision,
                     "threads": profile.threads, "description": profile.description, "file": profile.source})
    return rows
