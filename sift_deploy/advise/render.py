"""An advise report as a rich table, as advise.json and as advise.png: decoder SSIM (with its
interval) against end-to-end latency, the Pareto front joined and marked, the bound dashed and the
recommended cut ringed. Drawn with Pillow, as report.py draws the check's grid."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from ..fileio import atomic_file

JSON_FILE, PNG_FILE = "advise.json", "advise.png"
WIDTH, HEIGHT, MARGIN = 900, 560, 70
FRONT, OTHER, CHOSEN, BOUND = (200, 30, 30), (120, 120, 120), (20, 140, 40), (60, 60, 200)


def _interval(i: dict, digits: int = 3) -> str:
    return f"{i['mean']:.{digits}f} [{i['low']:.{digits}f}, {i['high']:.{digits}f}]"


def table(report: dict) -> Table:
    s = report["settings"]
    bound = f", SSIM bound {s['max_leakage_ssim']:g}" if s["max_leakage_ssim"] is not None else ""
    out = Table(title=f"advise: {report['checkpoint']['arch']} on {report['target']} ({report['backend']} "
                      f"{report['precision']}), {s['bandwidth_mbps']:g} Mbit/s{bound}", title_justify="left")
    for column in ("cut", "z", "int8 B", "zstd B" if report["cuts"] and report["cuts"][0]["bytes"]["codec"] == "zstd"
                   else "compressed B", "edge ms", "cloud ms", "e2e ms", "accuracy (int8 wire)", "SSIM [95% CI]",
                   "dCor", "front"):
        out.add_column(column, justify="left" if column in ("cut", "z") else "right")
    chosen = report["recommendation"]["cut"]
    for c in report["cuts"]:
        name = (c["name"] + (" *" if c["default"] else "") + (f" ({c['precision']})" if c["precision"] != report["precision"]
                else "") + (" <-" if c["name"] == chosen else ""))
        out.add_row(name, "x".join(map(str, c["z_shape"])), f"{c['bytes']['int8']:,}",
                    f"{c['bytes']['int8_compressed']:,.0f}", f"{c['edge_latency']['p50_ms']:.3f}",
                    f"{c['cloud_latency']['p50_ms']:.3f}", f"{c['end_to_end_ms']:.3f}",
                    _interval({k: 100 * v for k, v in c["accuracy_int8_wire"].items() if k in ("mean", "low", "high")}, 1),
                    _interval(c["leakage"]["decoder"]["ssim"]), f"{c['leakage']['dcor']:.3f}",
                    "yes" if c["pareto"] else "", style="bold" if c["name"] == chosen else None)
    return out


def markdown_table(report: dict) -> str:
    """The same figures as a Markdown table (README, CI summaries)."""
    lines = ["| cut | z | int8 B | compressed B | edge p50 ms | cloud p50 ms | e2e ms | accuracy, int8 wire [95% CI] | "
             "decoder SSIM [95% CI] | dCor | Pareto |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in report["cuts"]:
        acc = {k: 100 * v for k, v in c["accuracy_int8_wire"].items() if k in ("mean", "low", "high")}
        precision = f" ({c['precision']})" if c["precision"] != report["precision"] else ""
        lines.append(f"| {c['name']}{' (default)' if c['default'] else ''}{precision} | {'x'.join(map(str, c['z_shape']))} | "
                     f"{c['bytes']['int8']:,} | {c['bytes']['int8_compressed']:,.0f} | {c['edge_latency']['p50_ms']:.3f} | "
                     f"{c['cloud_latency']['p50_ms']:.3f} | {c['end_to_end_ms']:.3f} | {_interval(acc, 1)}% | "
                     f"{_interval(c['leakage']['decoder']['ssim'])} | {c['leakage']['dcor']:.3f} | "
                     f"{'yes' if c['pareto'] else ''} |")
    return "\n".join(lines) + "\n"


def _dashed(draw, start: tuple[float, float], end: tuple[float, float], fill, dash: int = 8) -> None:
    (x0, y0), (x1, _) = start, end
    x = x0
    while x < x1:
        draw.line([(x, y0), (min(x + dash, x1), y0)], fill=fill, width=2)
        x += 2 * dash


def draw_png(report: dict, path: Path) -> None:
    from PIL import Image, ImageDraw

    cuts, bound = report["cuts"], report["settings"]["max_leakage_ssim"]
    x_max = max(c["end_to_end_ms"] for c in cuts) * 1.15 or 1.0
    y_max = min(1.0, max([c["leakage"]["decoder"]["ssim"]["high"] for c in cuts] + [bound or 0.0]) * 1.15) or 1.0
    left, top, right, bottom = MARGIN, MARGIN, WIDTH - MARGIN // 2, HEIGHT - MARGIN

    def at(ms: float, ssim: float) -> tuple[float, float]:
        return left + (right - left) * ms / x_max, bottom - (bottom - top) * ssim / y_max

    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    s = report["settings"]
    draw.text((left, 12), f"{report['checkpoint']['arch']} on {report['target']} ({report['backend']} {report['precision']}): "
                          f"decoder SSIM vs end-to-end latency at {s['bandwidth_mbps']:g} Mbit/s", fill="black")
    draw.text((left, 30), "red, joined: Pareto front   grey: dominated   green ring: recommended   bars: 95% CI"
                          + ("   dashed: leakage bound" if bound is not None else ""), fill="black")
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=1)
    for i in range(6):
        ms, ssim = x_max * i / 5, y_max * i / 5
        x, _ = at(ms, 0)
        _, y = at(0, ssim)
        draw.line([(x, bottom), (x, bottom + 4)], fill="black")
        draw.text((x - 12, bottom + 8), f"{ms:.2f}", fill="black")
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((left - 40, y - 6), f"{ssim:.2f}", fill="black")
    draw.text(((left + right) // 2 - 80, bottom + 28), "end-to-end latency per image (ms)", fill="black")
    draw.text((8, top - 22), "decoder SSIM (leakage)", fill="black")
    if bound is not None and bound <= y_max:
        _dashed(draw, at(0, bound), at(x_max, bound), BOUND)
    front = sorted((c for c in cuts if c["pareto"]), key=lambda c: c["end_to_end_ms"])
    if len(front) > 1:
        draw.line([at(c["end_to_end_ms"], c["leakage"]["decoder"]["ssim"]["mean"]) for c in front], fill=FRONT, width=2)
    for c in cuts:
        ssim = c["leakage"]["decoder"]["ssim"]
        x, y = at(c["end_to_end_ms"], ssim["mean"])
        color = FRONT if c["pareto"] else OTHER
        draw.line([at(c["end_to_end_ms"], ssim["low"]), at(c["end_to_end_ms"], ssim["high"])], fill=color, width=2)
        r = 6
        draw.ellipse([x - r, y - r, x + r, y + r], fill=color if c["pareto"] else "white", outline=color, width=2)
        if c["name"] == report["recommendation"]["cut"]:
            draw.ellipse([x - 12, y - 12, x + 12, y + 12], outline=CHOSEN, width=3)
        draw.text((x + 14, y - 14), c["name"] + (" (default)" if c["default"] else ""), fill="black")
    with atomic_file(path, force=True) as tmp:
        image.save(tmp, format="PNG")


def write_outputs(report: dict, folder: Path) -> dict[str, str]:
    folder = Path(folder)
    paths = {"json": folder / JSON_FILE, "png": folder / PNG_FILE}
    with atomic_file(paths["json"], force=True) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    draw_png(report, paths["png"])
    return {k: str(v) for k, v in paths.items()}
