"""Write the JSON Schema of every registered document to docs/schemas/<name>.schema.json.

    python -m sift_deploy.documents.schemas           # regenerate
    python -m sift_deploy.documents.schemas --check   # exit 1 and name the stale files

A document whose model does not import (yet) is skipped with a note."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from pydantic import BaseModel

from . import DOCUMENTS

SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def load_model(name: str) -> type[BaseModel]:
    """The model class registered as `name` (ImportError/AttributeError when it is not there)."""
    module, cls = DOCUMENTS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def schema_text(model: type[BaseModel]) -> str:
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


def schema_path(name: str, folder: Path = SCHEMAS_DIR) -> Path:
    return folder / f"{name}.schema.json"


def importable_models(note=print) -> dict[str, type[BaseModel]]:
    models = {}
    for name in DOCUMENTS:
        try:
            models[name] = load_model(name)
        except (ImportError, AttributeError) as exc:
            note(f"skipped {name}: its model does not import ({exc})")
    return models


def stale_schemas(folder: Path = SCHEMAS_DIR, note=print) -> list[Path]:
    """Schema files that are missing or differ from their model's schema."""
    return [schema_path(name, folder) for name, model in importable_models(note).items()
            if not schema_path(name, folder).is_file() or schema_path(name, folder).read_text() != schema_text(model)]


def write_schemas(folder: Path = SCHEMAS_DIR, note=print) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in importable_models(note).items():
        path = schema_path(name, folder)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(schema_text(model))
        tmp.replace(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sift_deploy.documents.schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when a committed schema is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_schemas()
        for path in stale:
            print(f"stale: {path} (regenerate with python -m sift_deploy.documents.schemas)")
        return 1 if stale else 0
    for path in write_schemas():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
