"""The Pareto set of the evaluated candidates and its PNG (Pillow; matplotlib is not a dependency).

Objectives, all minimised: accuracy drop, leakage increase, and artifact bytes (fewer int8 layers
always look better on the first two, so size is what the float layers cost). Latency is drawn but
not an objective: batch-1 timings on a shared 2-core machine are too noisy to rank by.
"""

from __future__ import annotations

import math
from pathlib import Path

from .search import Candidate, SearchBounds

SIZE = (640, 480)
MARGIN = (70, 30, 30, 60)  # left, top, right, bottom


def _objectives(c: Candidate) -> tuple[float, float, float]:
    return (c.accuracy_drop_points, c.leakage_increase_ssim, float(c.bytes or 0))


def mark_pareto(candidates: list[Candidate]) -> list[Candidate]:
    """Set `pareto` on every candidate that runs and no other candidate dominates; return the front."""
    points = [_objectives(c) for c in candidates if c.runs]
    for c in candidates:
        p = _objectives(c)
        c.pareto = c.runs and not any(q != p and all(a <= b for a, b in zip(q, p)) for q in points)
    return [c for c in candidates if c.pareto]


def pareto_png(candidates: list[Candidate], bounds: SearchBounds, path: Path, chosen: Candidate | None = None) -> None:
    from PIL import Image, ImageDraw

    candidates = [c for c in candidates if c.runs]  # one that does not run has no figures to draw
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN
    x0, y0, x1, y1 = left, top, SIZE[0] - right, SIZE[1] - bottom
    xs = [c.accuracy_drop_points for c in candidates] + [0.0, bounds.max_acc_drop_points]
    ys = [c.leakage_increase_ssim for c in candidates] + [0.0]
    if math.isfinite(bounds.max_leak_increase_ssim):
        ys.append(bounds.max_leak_increase_ssim)
    (xmin, xmax), (ymin, ymax) = _span(xs), _span(ys)

    def at(x: float, y: float) -> tuple[float, float]:
        return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)

    draw.rectangle((x0, y0, x1, y1), outline="black")
    bx, _ = at(bounds.max_acc_drop_points, 0)
    draw.line((bx, y0, bx, y1), fill=(200, 60, 60))
    if math.isfinite(bounds.max_leak_increase_ssim):
        _, by = at(0, bounds.max_leak_increase_ssim)
        draw.line((x0, by, x1, by), fill=(200, 60, 60))
    for value, label in ((xmin, f"{xmin:.2f}"), (xmax, f"{xmax:.2f}")):
        draw.text((at(value, ymin)[0] - 10, y1 + 6), label, fill="black")
    for value, label in ((ymin, f"{ymin:+.3f}"), (ymax, f"{ymax:+.3f}")):
        draw.text((4, at(xmin, value)[1] - 6), label, fill="black")
    draw.text((x0 + 120, SIZE[1] - 24), "accuracy drop (points)  -  red: bounds  -  marker size: latency", fill="black")
    draw.text((x0, 8), "leakage increase (probe SSIM)  -  blue: Pareto set, grey: dominated, ring: chosen", fill="black")
    latencies = [c.latency_us for c in candidates if c.latency_us]
    lo, hi = (min(latencies), max(latencies)) if latencies else (0.0, 1.0)
    for c in sorted(candidates, key=lambda c: c.pareto):
        x, y = at(c.accuracy_drop_points, c.leakage_increase_ssim)
        r = 3 + 9 * ((c.latency_us - lo) / (hi - lo) if c.latency_us and hi > lo else 0.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(40, 90, 200) if c.pareto else (170, 170, 170))
        if chosen is not None and c.int8_layers == chosen.int8_layers:
            draw.ellipse((x - r - 4, y - r - 4, x + r + 4, y + r + 4), outline="black", width=2)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


def _span(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or 0.01
    return lo - pad, hi + pad
