"""The β trade-off of the SiftFunnel reference, from measured runs: accuracy gap to the unprotected twin
against deployed leakage (decoder SSIM and MINE, each as a ratio to the twin's), one point per training.

Every point is a `sift-deploy train` checkpoint's metrics JSON plus the `sift-deploy check` report of its
x86 int8 bundle; the twin's accuracy comes from its own metrics JSON (the same training budget), its
leakage from the twin column of each report (the same attacker, on the same images). Points are listed
in `benchmarks/privacy-runs/beta-sweep.json`:

    {"twin_metrics": "...metrics.json",
     "points": [{"label": "...", "short": "plot label", "metrics": "...metrics.json", "check": "...check.json"}, ...]}

(paths relative to that file). Writes beta-sweep.md (the table) and beta-sweep.png (the curve) beside it.

    .venv/bin/python benchmarks/beta_sweep.py [--points benchmarks/privacy-runs/beta-sweep.json]

The issue's three conditions for a shipped reference are drawn as lines: within 3 points of the twin,
deployed decoder SSIM at most half the twin's, MINE at least 50 % below the twin's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POINTS = ROOT / "benchmarks" / "privacy-runs" / "beta-sweep.json"
MAX_GAP_POINTS, MAX_SSIM_RATIO, MAX_MINE_RATIO = 3.0, 0.5, 0.5


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SystemExit(f"error: cannot read {path}: {exc}")


def point_row(label: str, metrics: dict, check: dict, twin_accuracy: float, short: str | None = None) -> dict:
    training, weights = metrics["training"], metrics["training"].get("weights", {})
    attack, info = check["attack"], check["information"]
    ssim, twin_ssim = attack["deployed"]["ssim"], attack["twin"]["ssim"]["mean"]
    mine, twin_mine = info["deployed"]["mi_nats"], info["twin"]["mi_nats"]
    gap = (twin_accuracy - metrics["test_accuracy"]) * 100
    row = {
        "label": label, "short": short or f"b{weights.get('beta'):g} s{training['seed']}", "beta": weights.get("beta"), "weights": weights, "epochs": training["epochs"],
        "seed": training["seed"], "accuracy": metrics["test_accuracy"], "gap_points": gap,
        "ssim": {k: ssim[k] for k in ("mean", "low", "high")}, "ssim_per_seed": ssim["per_seed"],
        "twin_ssim": twin_ssim, "ssim_ratio": ssim["mean"] / twin_ssim,
        "ssim_ratio_interval": [ssim["low"] / twin_ssim, ssim["high"] / twin_ssim],
        "mine_nats": mine, "twin_mine_nats": twin_mine, "mine_ratio": mine / twin_mine,
        "dcor": info["deployed"]["dcor"], "whitebox_ssim": check["whitebox"]["fake_quantised"]["ssim"],
        "label_only_ssim": attack["baselines"]["label_only_ssim"], "gate_passed": check["passed"],
        "pairing": check["budget"].get("decoder_pairing", "independent"), "budget": check["budget"]["name"],
    }
    row["meets"] = {"accuracy": gap <= MAX_GAP_POINTS, "ssim": row["ssim_ratio_interval"][1] <= MAX_SSIM_RATIO,
                    "mine": row["mine_ratio"] <= MAX_MINE_RATIO}
    return row


def markdown(rows: list[dict], twin_accuracy: float) -> str:
    mark = lambda ok: "holds" if ok else "**misses**"  # noqa: E731
    lines = [f"Twin (same budget) test accuracy: {twin_accuracy:.2%}.", "",
             "| training | β | epochs | seed | test acc | gap (≤ 3) | deployed SSIM [95 %] | per seed | ÷ twin (≤ 0.5) "
             "| MINE nats | ÷ twin (≤ 0.5) | dCor | white-box SSIM | gate |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["ssim"]
        lines.append(
            f"| {r['label']} | {r['beta']:g} | {r['epochs']:g} | {r['seed']} | {r['accuracy']:.2%} | "
            f"{r['gap_points']:.2f} ({mark(r['meets']['accuracy'])}) | {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}] | "
            f"{' / '.join(f'{v:.3f}' for v in r['ssim_per_seed'])} | {r['ssim_ratio']:.3f} ({mark(r['meets']['ssim'])}) | "
            f"{r['mine_nats']:.2f} (twin {r['twin_mine_nats']:.2f}) | {r['mine_ratio']:.2f} ({mark(r['meets']['mine'])}) | "
            f"{r['dcor']:.3f} | {r['whitebox_ssim']:.3f} | {'pass' if r['gate_passed'] else 'fail'} ({r['pairing']}) |")
    return "\n".join(lines) + "\n"


PANEL, MARGIN = (480, 360), 60


def plot(rows: list[dict], out: Path) -> None:
    """Two panels (PIL, as advise's plot): SSIM ratio with its 95 % interval, and MINE ratio, against the gap."""
    from PIL import Image, ImageDraw

    width, height = PANEL
    image = Image.new("RGB", (2 * width, height + 40), "white")
    draw = ImageDraw.Draw(image)
    draw.text((MARGIN, 8), "SiftFunnel CNN, Fashion-MNIST, x86 int8, 10 epochs: accuracy gap against deployed leakage "
                           "per training (dashed: the goals)", fill="black")
    x_max = max(MAX_GAP_POINTS + 1, max(r["gap_points"] for r in rows) + 0.5)
    panels = (("deployed decoder SSIM / twin's", "ssim_ratio", "ssim_ratio_interval", MAX_SSIM_RATIO),
              ("MINE / twin's", "mine_ratio", None, MAX_MINE_RATIO))
    for k, (name, key, interval, bound) in enumerate(panels):
        x0 = k * width
        left, top, right, bottom = x0 + MARGIN, 40 + MARGIN // 2, x0 + width - 20, 40 + height - MARGIN
        y_max = max(1.0, max(r[key] for r in rows) * 1.1)

        def at(gap: float, value: float) -> tuple[float, float]:
            return left + (right - left) * max(gap, 0.0) / x_max, bottom - (bottom - top) * value / y_max

        draw.line([(left, top), (left, bottom), (right, bottom)], fill="black")
        for i in range(6):
            gx, gy = x_max * i / 5, y_max * i / 5
            draw.text((at(gx, 0)[0] - 8, bottom + 6), f"{gx:.1f}", fill="black")
            draw.text((left - 36, at(0, gy)[1] - 6), f"{gy:.2f}", fill="black")
        draw.text((left + 60, bottom + 24), "accuracy gap to the twin (points)", fill="black")
        draw.text((left, top - 18), name, fill="black")
        for a, b in ((at(MAX_GAP_POINTS, 0), at(MAX_GAP_POINTS, y_max)), (at(0, bound), at(x_max, bound))):
            steps = 24
            for i in range(0, steps, 2):
                draw.line([(a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps),
                           (a[0] + (b[0] - a[0]) * (i + 1) / steps, a[1] + (b[1] - a[1]) * (i + 1) / steps)],
                          fill=(150, 150, 150), width=1)
        for r in rows:
            x, y = at(r["gap_points"], r[key])
            if interval:
                low, high = r[interval]
                draw.line([at(r["gap_points"], low), at(r["gap_points"], high)], fill=(200, 30, 30), width=2)
            ok = all(r["meets"].values())
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=(30, 140, 60) if ok else (200, 30, 30))
            draw.text((x + 8, y - 12), r["short"], fill="black")
    image.save(out, format="PNG")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=Path, default=DEFAULT_POINTS)
    args = parser.parse_args(argv)
    spec = load(args.points)
    base = args.points.parent
    twin_accuracy = load(base / spec["twin_metrics"])["test_accuracy"]
    rows = [point_row(p["label"], load(base / p["metrics"]), load(base / p["check"]), twin_accuracy, p.get("short"))
            for p in spec["points"]]
    rows.sort(key=lambda r: (r["beta"], r["seed"]))
    table = base / "beta-sweep.md"
    table.write_text(markdown(rows, twin_accuracy))
    (base / "beta-sweep.rows.json").write_text(json.dumps(rows, indent=1) + "\n")
    plot(rows, base / "beta-sweep.png")
    print(table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
