"""`sift-deploy targets` as a table (descriptions are in `--json`: they would not fit 80 columns)."""

from __future__ import annotations

from rich.table import Table


def targets_table(rows: list[dict]) -> Table:
    table = Table(title="device profiles (--target NAME or ALIAS; a profile .toml path works too)", title_justify="left",
                  caption="* the default precision", caption_justify="left")
    for column in ("name", "alias", "backend", "precisions", "threads"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        precisions = " ".join(f"{p}*" if p == row["default_precision"] else p for p in row["precisions"])
        table.add_row(row["name"], row["alias"] or "", row["backend"], precisions, str(row["threads"]))
    return table
