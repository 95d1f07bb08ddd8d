"""The base of every typed document: unknown keys are errors, and a validation failure becomes one
line that names the field (a SiftError the CLI prints with exit code 2).

Fields are named the way a TOML user sees them: `profile x.toml [parity.int8] lacks the field
'max_abs'`, `profile x.toml: 'threads' must be int, got str 'four'`."""

from __future__ import annotations

import types
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, WithJsonSchema

from ..errors import SiftError

T = TypeVar("T", bound="Document")

TYPE_NAMES = {"int_type": "int", "int_from_float": "int", "int_parsing": "int", "float_type": "float",
              "float_parsing": "float", "string_type": "str", "bool_type": "bool", "list_type": "list"}
TABLE_TYPES = {"dict_type", "model_type", "model_attributes_type"}
LIMITS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "greater than"),
          "less_than_equal": ("le", "at most"), "less_than": ("lt", "less than")}


class DocumentError(SiftError):
    """A document (profile, bounds, manifest, report) that does not match its schema.

    `field` is the dotted path of the first offending field and `kind` one of "missing", "unknown",
    "type", "invalid", so that a caller can phrase its own sentence (see bundle.read_manifest)."""

    def __init__(self, message: str, field: str = "", kind: str = "invalid"):
        super().__init__(message)
        self.field = field
        self.kind = kind


class Document(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StrictDocument(Document):
    """A document without coercion: true is not 1, "1" is not 1 and 17.0 is not 17 (ints are still
    accepted where floats are expected). For files people write by hand and the manifest."""

    model_config = ConfigDict(strict=True)


def schema_version(version: int) -> Any:
    """The type of a `schema_version` field that only `version` passes (JSON Schema: const)."""

    def readable(value: int) -> int:
        if value != version:
            raise ValueError(f"schema_version {value} is not supported; this sift-deploy reads schema_version {version}")
        return value

    return Annotated[int, Strict(), AfterValidator(readable),
                     WithJsonSchema({"const": version, "title": "Schema Version", "type": "integer"})]


def _without_null(schema: dict) -> None:
    branches = [branch for branch in schema.pop("anyOf") if branch.get("type") != "null"]
    schema.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
    schema.pop("default", None)


def absent(description: str | None = None) -> Any:
    """The default of a key a file may leave out but never sets to null (TOML has no null):
    `x: float | None = absent()` validates as optional, and its JSON Schema does not offer null."""
    return Field(default=None, description=description, json_schema_extra=_without_null)


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, so that the walk in `_model_at` can step into optional tables."""
    while get_origin(annotation) in (Union, types.UnionType):
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    return annotation


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class of the table at `loc` (keys of dict tables are stepped over)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unknown_fields(model: type[BaseModel], errors: list[dict], where: str, parent: tuple) -> DocumentError:
    names = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent]
    table = f" [{_dotted(parent)}]" if parent else ""
    allowed = _model_at(model, parent)
    hint = f"; allowed: {', '.join(allowed.model_fields)}" if allowed is not None else ""
    return DocumentError(f"{where}{table} has unknown field(s) {', '.join(names)}{hint}",
                         _dotted(parent + (names[0],)), "unknown")


def _precedence(error: dict) -> int:
    """A wrong schema_version explains everything else; an unknown key (a typo) explains a missing one."""
    if tuple(error["loc"][:1]) == ("schema_version",):
        return 0
    return 1 if error["type"] == "extra_forbidden" else 2


def describe_error(model: type[BaseModel], exc: ValidationError, where: str) -> DocumentError:
    """The first problem in `exc` as one line naming the field."""
    errors = sorted(exc.errors(), key=_precedence)
    first = errors[0]
    loc, kind, value = tuple(first["loc"]), first["type"], first.get("input")
    field = _dotted(loc)
    if loc and loc[-1] == "[key]":  # a dict key of the wrong kind: name the key as a table
        loc, field = loc[:-1], _dotted(loc[:-1])
    parent, leaf = loc[:-1], (loc[-1] if loc else "")
    table = f" [{_dotted(parent)}]" if parent else ""
    got = f"got {type(value).__name__} {_short(value)}"
    if kind == "extra_forbidden":
        return _unknown_fields(model, errors, where, parent)
    if kind == "missing":
        return DocumentError(f"{where}{table} lacks the field '{leaf}'", field, "missing")
    if kind in TABLE_TYPES:
        subject = f": [{field}] must be" if field else " must hold"
        return DocumentError(f"{where}{subject} a table, {got}", field, "type")
    if kind in TYPE_NAMES:
        return DocumentError(f"{where}{table}: '{leaf}' must be {TYPE_NAMES[kind]}, {got}", field, "type")
    if kind in LIMITS:
        bound, words = LIMITS[kind]
        return DocumentError(f"{where}{table}: {leaf} must be {words} {first['ctx'][bound]}, {got}", field)
    if kind == "value_error":  # our validators write whole sentences that name the field
        if loc and _model_at(model, loc) is not None:  # a table's own validator: name the table itself
            table = f" [{field}]"
        return DocumentError(f"{where}{table}: {first['ctx']['error']}", field)
    if kind == "literal_error":
        return DocumentError(f"{where}{table}: '{leaf}' must be {first['ctx']['expected']}, {got}", field)
    return DocumentError(f"{where}{table}: '{leaf}' {first['msg'][0].lower()}{first['msg'][1:]} ({got})", field)


def parse_document(model: type[T], doc: object, where: str) -> T:
    """Validate `doc` as `model`; the first problem becomes one line naming the field."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise describe_error(model, exc, where) from None
