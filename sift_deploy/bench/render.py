"""A bench report for people: rich tables on the terminal, and Markdown that fits a CI job summary."""

from __future__ import annotations

from pathlib import Path

from ..backends.base import STAND_IN
from ..fileio import atomic_file


def _fmt(value, digits: int = 3, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    else:
        text = f"{value:,}"
    return f"{text} {unit}".strip()


def title(report: dict) -> str:
    b, r = report["bundle"], report["runtime"]
    stand_in = " [STAND-IN]" if r["kind"] == STAND_IN else ""
    return (f"{b['target']} / {b['backend']} {b['precision']} ({b['artifact']}) on {r['name']}{stand_in}, "
            f"batch {report['settings']['batch']}, {report['settings']['threads']} thread(s)")


def summary_rows(report: dict) -> list[tuple[str, str, str]]:
    """(section, figure, value) rows shared by the terminal table and the Markdown."""
    lat, mem, feat = report["latency"], report["memory"], report["features"]
    s = report["settings"]
    rows = [
        ("latency", f"p50 / p90 / p99 per call ({s['iterations']} runs, {s['warmup']} warm-up)",
         f"{lat['p50_ms']:.3f} / {lat['p90_ms']:.3f} / {lat['p99_ms']:.3f} ms"),
        ("latency", "mean ± std", f"{lat['mean_ms']:.3f} ± {lat['std_ms']:.3f} ms"),
        ("latency", "min / max", f"{lat['min_ms']:.3f} / {lat['max_ms']:.3f} ms"),
        ("latency", "per image (p50) / throughput",
         f"{lat['per_image_p50_ms']:.4f} ms / {lat['throughput_images_per_s']:,.0f} images/s"),
        ("latency", "load / first inference", f"{lat['load_ms']:.2f} ms / {lat['first_inference_ms']:.3f} ms"),
    ]
    if "skipped" in mem:
        rows.append(("memory", "peak RSS", f"skipped: {mem['skipped']}"))
    else:
        rows += [
            ("memory", "peak RSS (fresh process)", _fmt(mem["peak_rss_mb"], 1, "MB")),
            ("memory", "baseline RSS before loading (python + numpy + runtime)", _fmt(mem["baseline_rss_mb"], 1, "MB")),
            ("memory", "peak over baseline", _fmt(mem["peak_over_baseline_mb"], 1, "MB")),
            ("memory", "cold runtime import / cold load", f"{mem['runtime_import_ms']:.0f} ms / {mem['cold_load_ms']:.1f} ms"),
        ]
    floor = report.get("floor")
    if floor and "skipped" in floor:
        rows.append(("latency", "compute floor", f"skipped: {floor['skipped']}"))
    elif floor:
        rows.append(("latency", f"compute floor: {floor['edge_macs'] * floor['batch'] / 1e6:,.1f} M MACs / peak "
                     f"{floor['peak_gmacs_per_s']:,.1f} GMAC/s ({floor['probe']})",
                     f"{floor['floor_ms']:.4f} ms; p50 is {floor['p50_over_floor']:,.1f}x the floor"))
    rows.append(("memory", "artifact on disk", f"{report['bundle']['artifact_bytes']:,} B"))
    raw = feat["bytes_per_image"]
    comp = feat["compression"]
    codec = comp["codecs"][comp["codec"]]
    rows.append(("features", f"z {'x'.join(map(str, feat['shape']))} = {feat['numel']:,} values; raw fp32 / fp16 / int8",
                 f"{raw['fp32']:,} / {raw['fp16']:,} / {raw['int8']:,} B per image"))
    rows.append(("features", f"int8 side information ({feat['int8_wire']['dtype']}, per channel)",
                 f"{feat['int8_wire']['scales_bytes_once']} B once per session"))
    rows.append(("features", f"compressed with {comp['codec']} ({codec['setting']}), mean per image",
                 " / ".join(f"{codec['per_image'][d]['mean_bytes']:,.0f}" for d in ("fp32", "fp16", "int8")) + " B"))
    for name, other in comp["codecs"].items():
        if name != comp["codec"]:
            rows.append(("features", f"compressed with {name} ({other['setting']})",
                         " / ".join(f"{other['per_image'][d]['mean_bytes']:,.0f}" for d in ("fp32", "fp16", "int8")) + " B"))
    acc = feat["wire_accuracy"]
    if "skipped" in acc:
        rows.append(("features", "int8 on the wire: accuracy cost", f"skipped: {acc['skipped']}"))
    else:
        text = f"top-1 agreement with fp32 wire {acc['top1_agreement_int8_vs_fp32_wire']:.2%}"
        if "accuracy_fp32_wire" in acc:
            text += (f"; accuracy {acc['accuracy_fp32_wire']:.2%} -> {acc['accuracy_int8_wire']:.2%} "
                     f"({acc['accuracy_cost_points']:+.2f} points cost)")
        rows.append(("features", f"int8 on the wire ({acc['images']} images, float cloud)", text))
    budgets = report["budgets"]
    for item in budgets["items"]:
        verdict = "PASS" if item["passed"] else ("FAIL" if item["passed"] is False else budgets.get("reason", "not checked"))
        rows.append(("budget", f"{item['figure']} <= {item['limit']:g} {item['unit']} ({budgets.get('profile')})",
                     f"{_fmt(item['measured'], 3, item['unit'])}: {verdict}"))
    if report["baseline"]:
        for item in report["baseline"]["items"]:
            if item["change_pct"] is None:
                rows.append(("baseline", item["figure"], item.get("note", "n/a")))
                continue
            verdict = "REGRESSED" if item["regressed"] else "ok"
            rows.append(("baseline", f"{item['figure']} vs baseline (tolerance {report['baseline']['tolerance_pct']:g}%)",
                         f"{item['measured']:.3f} vs {item['baseline']:.3f} {item['unit']} "
                         f"({item['change_pct']:+.1f}%): {verdict}"))
    return rows


PROFILE_TOP = 10


def profile_rows(report: dict, top: int = PROFILE_TOP) -> list[tuple[str, str, str, str]]:
    """(op, op type, us per run, share) for the `top` slowest ops of --profile, then the shares of
    quantize/dequantize and layout changes."""
    prof = report.get("profile")
    if not prof:
        return []
    rows = [(op["node"], op["op_type"], f"{op['us']:,.1f}", f"{op['share']:.1%}") for op in prof["ops"][:top]]
    rest = prof["ops"][top:]
    if rest:
        rows.append((f"({len(rest)} more ops)", "", f"{sum(o['us'] for o in rest):,.1f}",
                     f"{sum(o['share'] for o in rest):.1%}"))
    shares = prof["shares"]
    rows.append(("share: quantize / dequantize", "", "", f"{shares['quantize_dequantize']:.1%}"))
    rows.append(("share: layout changes", "", "", f"{shares['layout']:.1%}"))
    rows.append(("share: compute", "", "", f"{shares['compute']:.1%}"))
    return rows


def profile_title(report: dict) -> str:
    prof = report["profile"]
    return (f"per-op profile: {prof['method']}; {prof['runs']} runs at batch {prof['batch']}, "
            f"op time {prof['op_us_total']:,.1f} us per run")


def provenance_rows(report: dict) -> list[tuple[str, str]]:
    p = report["provenance"]
    versions = ", ".join(f"{k} {v}" for k, v in p["runtime_versions"].items())
    rows = [("device", p["device_model"]), ("cores (online / usable)", f"{p['cores_online']} / {p['cores_usable']}"),
            ("CPU governor", p["cpu_governor"]), ("OS / kernel", f"{p['os']} / {p['kernel']}"),
            ("Python", p["python"]), ("runtime", f"{report['runtime']['label']} ({versions})"),
            ("threads", f"{p['threads']} ({report['settings']['threads_source']})")]
    if p.get("l4t_release"):
        rows.append(("L4T (JetPack)", p["l4t_release"]))
    if p.get("load_average_1_5_15"):
        rows.append(("load average at the end", " / ".join(str(v) for v in p["load_average_1_5_15"])))
    return rows


def render_tables(report: dict) -> list:
    """rich tables for the terminal (rich is imported here, not at module import)."""
    from rich.markup import escape
    from rich.table import Table

    verdict = "[bold green]PASS[/]" if report["passed"] else "[bold red]FAIL[/]"
    table = Table(title=f"bench: {escape(title(report))} - {verdict}", title_justify="left")
    table.add_column("")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    last = None
    for section, figure, value in summary_rows(report):
        table.add_row(section if section != last else "", escape(figure), escape(value))
        last = section
    prov = Table(title="provenance", title_justify="left", show_header=False)
    prov.add_column("")
    prov.add_column("")
    for key, value in provenance_rows(report):
        prov.add_row(escape(key), escape(str(value)))
    tables = [table, prov]
    if report.get("profile"):
        ops = Table(title=escape(profile_title(report)), title_justify="left")
        for column, justify in (("op", "left"), ("type", "left"), ("us / run", "right"), ("share", "right")):
            ops.add_column(column, justify=justify)
        for row in profile_rows(report):
            ops.add_row(*(escape(c) for c in row))
        tables.append(ops)
    return tables


def render_markdown(report: dict) -> str:
    """A report that fits a CI job summary (GitHub-flavoured Markdown)."""
    verdict = "PASS" if report["passed"] else "FAIL"
    lines = [f"### sift-deploy bench: {verdict}", "", f"**{title(report)}**", ""]
    if report["runtime"]["kind"] == STAND_IN:
        lines += [f"> **Stand-in:** {report['runtime']['label'].removeprefix(f'{STAND_IN}: ')}. These are not measurements of the target device.", ""]
    for failure in report["failures"]:
        lines.append(f"- :x: {failure}")
    if report["failures"]:
        lines.append("")
    lines += ["| | figure | measured |", "|---|---|---:|"]
    last = None
    for section, figure, value in summary_rows(report):
        cell = lambda t: str(t).replace("|", "\\|")  # noqa: E731
        lines.append(f"| {cell(section) if section != last else ''} | {cell(figure)} | {cell(value)} |")
        last = section
    if report.get("profile"):
        lines += ["", f"**{profile_title(report)}**", "", "| op | type | us / run | share |", "|---|---|---:|---:|"]
        lines += [f"| {' | '.join(str(c).replace('|', '/') for c in row)} |" for row in profile_rows(report)]
    lines += ["", "<details><summary>provenance</summary>", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {str(v).replace('|', '/')} |" for k, v in provenance_rows(report)]
    lines += ["", "</details>", ""]
    for note in report.get("notes", []):
        lines.append(f"_note: {note}_  ")
    lines.append(f"_sift-deploy {report['tool']['version']}, report schema {report['schema_version']}, {report['created']}_")
    return "\n".join(lines) + "\n"


def write_text(path: Path, text: str) -> None:
    with atomic_file(Path(path), force=True) as tmp:
        tmp.write_text(text)
