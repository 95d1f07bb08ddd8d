"""The base of every typed document: unknown keys are errors, and a validation failure becomes one
line that names the field (a SiftError the CLI prints with exit code 2)."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import SiftError

T = TypeVar("T", bound="Document")


class DocumentError(SiftError):
    """A document (profile, bounds, manifest, report) that does not match its schema."""


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _field(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_document(model: type[T], doc: object, where: str) -> T:
    """Validate `doc` as `model`; the first problem becomes one line naming the field."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field(tuple(first["loc"]))
        kind = first["type"]
        if kind == "extra_forbidden":
            raise DocumentError(f"{where} has the unknown field '{field}'") from None
        if kind == "missing":
            raise DocumentError(f"{where} lacks the field '{field}'") from None
        raise DocumentError(f"{where}: '{field}' {first['msg'][0].lower()}{first['msg'][1:]} "
                            f"(got {first.get('input')!r})") from None
