"""Rendering of check reports: JSON, Markdown (fits a CI job summary), JUnit XML (one test case
per bound) and a PNG grid of originals and reconstructions."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from .fileio import atomic_file


def _fmt(value: float, kind: str) -> str:
    return f"{value:.4g}"


def markdown(report: dict) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    acc, attack, info = report["accuracy"], report["attack"], report["information"]
    lines = [
        f"## sift-deploy check: {verdict}",
        "",
        f"Bundle `{report['bundle']}` ({report['target']}, {report['backend']} {report['precision']}, run with "
        f"{report['runtime']}); seed {report['seed']}, budget `{report['budget']['name']}`, {report['seconds']} s.",
        "",
        *[f"> warning: {w}\n" for w in (report.get("data") or {}).get("warnings", []) +
          (report.get("data") or {}).get("budget_cuts", [])],
        "| bound | measured | limit | result |",
        "|---|---|---|---|",
    ]
    for b in report["bounds"]:
        sign = "<=" if b["kind"] == "max" else ">="
        lines.append(f"| {b['name']} | {_fmt(b['measured'], b['kind'])} | {sign} {_fmt(b['limit'], b['kind'])} | "
                     f"{'pass' if b['passed'] else '**FAIL**'} |")
    twin, twin_info = attack["twin"], info["twin"]
    lines += [
        "",
        "| figure | float model | deployed artifact | unprotected twin (float, contrast) |",
        "|---|---|---|---|",
        f"| top-1 accuracy ({acc['images']} test images) | {acc['float']:.2%} | {acc['deployed']:.2%} "
        f"(int8 on the wire: {acc['deployed_wire_int8']:.2%}) | {acc['twin']:.2%} |",
    ]
    for metric, unit in (("ssim", ""), ("psnr", " dB"), ("mse", "")):
        f, d, t = attack["float"][metric], attack["deployed"][metric], twin[metric]
        lines.append(f"| decoder attack {metric.upper()}{unit} (mean [95% CI]) | {f['mean']:.4f} [{f['low']:.4f}, "
                     f"{f['high']:.4f}] | {d['mean']:.4f} [{d['low']:.4f}, {d['high']:.4f}] | {t['mean']:.4f} |")
    lines += [
        f"| transfer attack SSIM (float decoder on deployed features) | | {attack['transfer']['ssim']['mean']:.4f} | |",
        f"| MINE I(x; z), nats | {info['float']['mi_nats']:.3f} | {info['deployed']['mi_nats']:.3f} | "
        f"{twin_info['mi_nats']:.3f} |",
        f"| dCor(x, z) | {info['float']['dcor']:.3f} | {info['deployed']['dcor']:.3f} | {twin_info['dcor']:.3f} |",
        f"| non-zero entries of z per image | {info['float']['nonzero']['mean_count']:.1f} | "
        f"{info['deployed']['nonzero']['mean_count']:.1f} | {twin_info['nonzero']['mean_count']:.1f} |",
        f"| white-box attack SSIM | {report['whitebox']['float']['ssim']:.4f} | "
        f"{report['whitebox']['fake_quantised']['ssim']:.4f} (fake-quantised edge) | {report['whitebox']['twin']['ssim']:.4f} |",
        "",
        f"Baselines: the label-only reconstruction (mean aux image of the true class) scores SSIM "
        f"{attack['baselines']['label_only_ssim']:.4f}, the no-information one {attack['baselines']['no_information_ssim']:.4f}. "
        f"Decoder seeds per side: {len(attack['float']['ssim']['per_seed'])} (per-seed SSIM, float: "
        f"{', '.join(f'{v:.4f}' for v in attack['float']['ssim']['per_seed'])}; deployed: "
        f"{', '.join(f'{v:.4f}' for v in attack['deployed']['ssim']['per_seed'])}).",
        "",
    ]
    return "\n".join(lines)


def junit(report: dict) -> str:
    suite = ET.Element("testsuite", name="sift-deploy check", tests=str(len(report["bounds"])),
                       failures=str(sum(not b["passed"] for b in report["bounds"])), time=str(report["seconds"]))
    for b in report["bounds"]:
        case = ET.SubElement(suite, "testcase", classname=f"sift_deploy.check.{report['target']}", name=b["name"])
        if not b["passed"]:
            sign = "<=" if b["kind"] == "max" else ">="
            failure = ET.SubElement(case, "failure", message=f"{b['name']}: {b['measured']:.4g} is not {sign} {b['limit']:.4g}")
            failure.text = b["detail"]
        else:
            ET.SubElement(case, "system-out").text = f"{b['measured']:.4g} ({b['detail']})"
    return ET.tostring(ET.ElementTree(suite).getroot(), encoding="unicode", xml_declaration=True) + "\n"


def grid_png(rows: dict[str, np.ndarray], path: Path, scale: int = 3, ssim: dict[str, float] | None = None) -> None:
    """One labelled row per entry of `rows`: images (N, C, S, S) in [0, 1]. A row named in `ssim`
    shows its SSIM under the label, and the PNG carries it as a text chunk `SSIM <label>`."""
    from PIL import Image, ImageDraw
    from PIL.PngImagePlugin import PngInfo

    ssim = ssim or {}

    label_w, pad = 260, 4
    first = next(iter(rows.values()))
    n, side = min(len(v) for v in rows.values()), first.shape[-1] * scale
    canvas = Image.new("RGB", (label_w + n * (side + pad), len(rows) * (side + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, images) in enumerate(rows.items()):
        y = pad + r * (side + pad)
        draw.text((4, y + side // 2 - 6), label, fill="black")
        if label in ssim:
            draw.text((4, y + side // 2 + 8), f"SSIM {ssim[label]:.3f}", fill="black")
        for i in range(n):
            img = np.clip(images[i], 0, 1)
            img = (img.transpose(1, 2, 0) * 255).astype(np.uint8)
            tile = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).resize((side, side), Image.NEAREST)
            canvas.paste(tile.convert("RGB"), (label_w + i * (side + pad), y))
    info = PngInfo()
    for label, value in ssim.items():
        info.add_text(f"SSIM {label}", f"{value:.4f}")
    with atomic_file(path, force=True) as tmp:
        canvas.save(tmp, format="PNG", pnginfo=info)


def row_ssim(grid: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean SSIM of each reconstruction row of the grid against its first row (the originals)."""
    from .privacy.metrics import score_images

    rows = iter(grid.items())
    _, original = next(rows)
    return {label: float(score_images(original[:len(images)], images).metric("ssim").mean()) for label, images in rows}


def write_reports(report: dict, grid: dict[str, np.ndarray], out_dir: Path) -> dict[str, str]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "check.json", "markdown": out_dir / "check.md", "junit": out_dir / "check.junit.xml",
             "png": out_dir / "reconstructions.png"}
    for key, text in (("json", json.dumps(report, indent=2) + "\n"), ("markdown", markdown(report)), ("junit", junit(report))):
        with atomic_file(paths[key], force=True) as tmp:
            tmp.write_text(text)
    grid_png(grid, paths["png"], ssim=row_ssim(grid))
    return {k: str(v) for k, v in paths.items()}
