"""`sift-deploy inspect`: what a checkpoint holds and what its split costs.

`inspect_checkpoint` returns one JSON-ready document (schema_version 1):
- `checkpoint`: path, size, sha256, format, notes;
- `model`: architecture, input shape, split point, transmitted shape and bytes per image
  (fp32/fp16/int8), edge/cloud parameters and MACs (see `models.summary`);
- `cuts`: every candidate cut (input side first) with its z shape, bytes and edge cost;
- `metadata`: dataset and split, training recipe, metrics and tool version as recorded in the
  checkpoint (`None` where the checkpoint does not record them, e.g. official state_dicts).
`render_inspection` turns that document into rich tables; the CLI only prints them.

(Imported as `sift_deploy.inspect`; it does not shadow the standard library's `inspect`, since
the package folder itself is never on sys.path.)
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from .checkpoint import REFERENCE_CHECKPOINT, load_checkpoint
from .errors import SiftError
from .models.summary import summarize

SCHEMA_VERSION = 1


def inspect_checkpoint(path: Path | None = None, arch: str | None = None, input_size: int | None = None) -> dict:
    """Load a checkpoint (default: the shipped reference) and describe it and its split."""
    if path is None and not REFERENCE_CHECKPOINT.exists():
        raise SiftError(f"the shipped reference checkpoint {REFERENCE_CHECKPOINT} is missing; reinstall sift-deploy "
                        f"or pass a CHECKPOINT path")
    ckpt = load_checkpoint(path, arch=arch, input_size=input_size)
    summary = summarize(ckpt.model)
    meta = ckpt.metadata
    notes = list(ckpt.notes) + list(ckpt.warnings)
    recorded_shape = meta.get("transmitted_shape")
    if recorded_shape is not None and list(recorded_shape) != list(summary.transmitted_shape):
        notes.append(f"the checkpoint records transmitted shape {recorded_shape} but the model emits "
                     f"{list(summary.transmitted_shape)}")
    dataset = meta.get("dataset") if isinstance(meta.get("dataset"), dict) else None
    return {
        "schema_version": SCHEMA_VERSION,
        "checkpoint": {
            "path": str(ckpt.path),
            "bytes": ckpt.path.stat().st_size,
            "sha256": ckpt.sha256,
            "format": "official state_dict" if ckpt.official else "sift-deploy safetensors",
            "reference": path is None,
            "notes": notes,
        },
        "model": {
            "arch": ckpt.spec.arch,
            "in_channels": ckpt.spec.in_channels,
            "num_classes": ckpt.spec.num_classes,
            "input_size": ckpt.spec.input_size,
            "width": ckpt.spec.width,
            **summary.as_dict(),
        },
        "cuts": list_cuts(ckpt.model),
        "metadata": {
            "dataset": None if dataset is None else dataset.get("dataset"),
            "data_source": None if dataset is None else dataset.get("source"),
            "split_seed": None if dataset is None else dataset.get("seed"),
            "split_sizes": None if dataset is None else dataset.get("sizes"),
            "class_names": meta.get("class_names"),
            "normalization": meta.get("normalization"),
            "preprocessing": meta.get("preprocessing"),
            "recipe": meta.get("training"),
            "metrics": meta.get("metrics"),
            "tool_version": meta.get("tool_version"),
        },
    }


def list_cuts(model) -> list[dict]:
    """Each candidate cut: name, official block_idx, z shape, bytes per image and edge cost."""
    cuts = []
    for name in model.cuts:
        summary = summarize(model.split_at(name))
        stage = model.stage(name)
        cuts.append({"name": name, "default": name == model.default_split,
                     "block_idx": None if stage is None else stage.block_idx,
                     "transmitted_shape": list(summary.transmitted_shape),
                     "transmitted_bytes": summary.transmitted_bytes,
                     "edge_params": summary.edge.params, "edge_macs": summary.edge.macs})
    return cuts


# ---------------------------------------------------------------- rendering

def _count(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n:,} ({n / size:.2f} {unit})"
    return f"{n:,}"


def _bytes(n: int) -> str:
    return f"{n:,} B" if n < 1024 else f"{n:,} B ({n / 1024:.1f} KiB)"


def _plain(value: object) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    return str(value)


def _key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def render_inspection(doc: dict) -> list[Table]:
    """Rich tables for a document from `inspect_checkpoint`: model, cost, metadata."""
    ck, model, meta = doc["checkpoint"], doc["model"], doc["metadata"]
    shape = "x".join(str(s) for s in model["transmitted_shape"])
    tb = model["transmitted_bytes"]
    tables = [_key_value_table("Model", [
        ("checkpoint", f"{ck['path']}{' (shipped reference)' if ck['reference'] else ''}"),
        ("format", ck["format"]),
        ("sha256", ck["sha256"]),
        ("architecture", model["arch"]),
        ("input", "x".join(str(s) for s in model["input_shape"])),
        ("classes", str(model["num_classes"])),
        ("split point", model["split_point"]),
        ("transmitted z", f"{shape} = {model['transmitted_values']:,} values per image"),
        ("bytes per image", f"fp32 {_bytes(tb['fp32'])} | fp16 {_bytes(tb['fp16'])} | int8 {_bytes(tb['int8'])}"),
    ])]

    cost = Table(title="Cost per image (conv + linear MACs)", title_justify="left")
    cost.add_column("part")
    cost.add_column("params", justify="right")
    cost.add_column("MACs", justify="right")
    cost.add_row("edge (device)", _count(model["edge"]["params"]), _count(model["edge"]["macs"]))
    cost.add_row("cloud (server)", _count(model["cloud"]["params"]), _count(model["cloud"]["macs"]))
    cost.add_row("total", _count(model["total_params"]), _count(model["total_macs"]), style="bold")
    if model["unused_params"]:
        cost.add_row("registered, never run", _count(model["unused_params"]), "0", style="dim")
    tables.append(cost)

    cuts = Table(title="Cut points (export --split-at NAME; * the default)", title_justify="left")
    for column in ("cut", "block_idx", "z", "fp32 B", "int8 B", "edge MACs"):
        cuts.add_column(column, justify="left" if column in ("cut", "z") else "right")
    for cut in doc["cuts"]:
        cuts.add_row(cut["name"] + (" *" if cut["default"] else ""),
                     "" if cut["block_idx"] is None else str(cut["block_idx"]),
                     "x".join(str(s) for s in cut["transmitted_shape"]),
                     f"{cut['transmitted_bytes']['fp32']:,}", f"{cut['transmitted_bytes']['int8']:,}",
                     f"{cut['edge_macs'] / 1e6:.2f} M", style="bold" if cut["default"] else None)
    tables.append(cuts)

    recipe = meta["recipe"] or {}
    metrics = meta["metrics"] or {}
    rows = [
        ("dataset", _plain(meta["dataset"])),
        ("data source", _plain(meta["data_source"])),
        ("split seed", _plain(meta["split_seed"])),
        ("split sizes", _plain(meta["split_sizes"])),
        ("normalisation", _plain(meta["normalization"])),
    ]
    if recipe:
        weights = recipe.get("weights")
        main = {k: v for k, v in recipe.items() if k not in ("weights", "torch", "python") and v is not None}
        rows.append(("recipe", _plain(main)))
        if weights:
            rows.append(("objective", _plain(weights)))
        rows.append(("trained with", f"torch {_plain(recipe.get('torch'))}, python {_plain(recipe.get('python'))}"))
    else:
        rows.append(("recipe", "not recorded"))
    if metrics:
        for key in ("test_accuracy", "test_images", "epochs", "steps", "train_seconds", "final_loss"):
            if key in metrics:
                value = metrics[key]
                shown = f"{value:.2%}" if key == "test_accuracy" else _plain(value)
                rows.append((key.replace("_", " "), shown))
        if metrics.get("final_terms"):
            rows.append(("final loss terms", _plain(metrics["final_terms"])))
    else:
        rows.append(("metrics", "not recorded"))
    rows.append(("tool version", _plain(meta["tool_version"])))
    tables.append(_key_value_table("Metadata", rows))

    if ck["notes"]:
        tables.append(_key_value_table("Notes", [("note", n) for n in ck["notes"]]))
    return tables


# ---------------------------------------------------------------- bundles

def inspect_bundle(path: Path) -> dict:
    """What a bundle was exported as, and the per-layer precisions `--precision auto` chose."""
    from .bundle import read_manifest

    manifest = read_manifest(path)
    return {"schema_version": SCHEMA_VERSION, "bundle": str(path), "target": manifest["target"],
            "backend": manifest["backend"], "precision": manifest["precision"], "edge_file": manifest["edge_file"],
            "model": manifest["model"], "precision_search": manifest.get("precision_search")}


def render_bundle(doc: dict) -> list:
    tables = [_key_value_table("Bundle", [
        ("bundle", doc["bundle"]), ("target", f"{doc['target']} ({doc['backend']})"),
        ("precision", doc["precision"] + (" (per layer, --precision auto)" if doc["precision_search"] else "")),
        ("edge file", doc["edge_file"]), ("model", f"{doc['model']['arch']} split at {doc['model']['split_point']}")])]
    if doc["precision_search"]:
        from .precision.render import search_table

        tables.append(search_table(doc["precision_search"]))
    return tables
