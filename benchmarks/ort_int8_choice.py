"""What to quantize for ONNX Runtime int8 on x86, by measurement (batch 1, 1 thread, p50).

Candidates, all from the same edge (the reference checkpoint, or seeded random init if absent) and
the same calibration (first 512 committed real images, MinMax), parity on the 256 held-out ones:

  torch eager fp32         the float edge in PyTorch (the baseline of the 10x goal)
  ORT fp32 faithful        the plain legacy export (TripletAttention permutes, 2->1 7x7 convs)
  ORT fp32                 the shipped fp32 artifact (attention blocks in export form, rewrite.py)
  ORT int8 plain faithful  quantize_static on everything, faithful graph (runtime-anchors' "ORT int8 QDQ")
  ORT int8 plain           quantize_static on everything, export form
  ORT int8 all convs       every Conv int8, everything else float
  ORT int8 chosen + stem   the chosen set plus the 1-input-channel stem conv
  ORT int8 chosen          the shipped rule: convs with >= 16 input channels and >= 50k MACs, then the
                           parity guard (as `export` does)

Timing (`sift_deploy.bench.timing`, the loop `sift-deploy bench` uses): every session is created once;
then R rounds, each running every candidate N times in turn (interleaved, so a busy neighbour slows all
candidates alike); p50 per round, median over rounds, and each candidate's ratio to ORT fp32 (median of
per-round ratios). Both wall time and the calling thread's CPU time are reported: at 1 thread every
kernel runs on the calling thread, so CPU time is what the call costs even when another process shares
the cores (wall time then includes waiting).

    .venv/bin/python benchmarks/ort_int8_choice.py [--rounds 15] [--runs 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sift_deploy.bench.timing import time_calls, warm_up  # noqa: E402


def load_edge():
    import torch

    from sift_deploy.checkpoint import REFERENCE_CHECKPOINT, load_checkpoint
    from sift_deploy.models import ModelSpec, build_model

    if REFERENCE_CHECKPOINT.exists():
        ckpt = load_checkpoint(REFERENCE_CHECKPOINT)
        return ckpt.model.eval().edge.eval(), ckpt.mean, ckpt.std, f"reference checkpoint ({ckpt.sha256[:12]})"
    torch.manual_seed(0)
    return build_model(ModelSpec("siftfunnel-cnn")).eval().edge.eval(), 0.5, 0.5, "random init (seed 0)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from sift_deploy.backends.onnx_common import INPUT_NAME, export_onnx, float_parity_numbers
    from sift_deploy.backends.onnxruntime.export import conv_costs, quantize_onnx, select_int8_nodes
    from sift_deploy.backends.onnxruntime.runner import session_options
    from sift_deploy.data.calibration import CALIBRATION_COUNT, DEFAULT_CALIBRATION, load_image_file
    from sift_deploy.data.preprocess import model_input

    torch.set_num_threads(1)
    edge, mean, std, source = load_edge()
    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    inputs = model_input(images, 32, mean, std)
    calib, held_out = inputs[:CALIBRATION_COUNT], inputs[CALIBRATION_COUNT:]
    with torch.inference_mode():
        z_ref = edge(torch.from_numpy(held_out)).numpy()

    work = Path(tempfile.mkdtemp(prefix="ort-int8-choice-"))
    faithful, fast = work / "faithful.onnx", work / "fast.onnx"
    export_onnx(edge, (1, 32, 32), faithful, rewrite=False)
    export_onnx(edge, (1, 32, 32), fast, rewrite=True)
    import onnx

    fast_model = onnx.load(str(fast))
    chosen = [r["node"] for r in select_int8_nodes(fast_model)[0]]
    stem = [r["node"] for r in conv_costs(fast_model) if r["in_channels"] == 1]
    all_convs = [r["node"] for r in conv_costs(fast_model)]

    files = {"ORT fp32 faithful": faithful, "ORT fp32": fast}
    variants = {
        "ORT int8 plain faithful": (faithful, "all"),
        "ORT int8 plain": (fast, "all"),
        "ORT int8 all convs": (fast, all_convs),
        "ORT int8 chosen + stem": (fast, chosen + stem),
        "ORT int8 chosen": (fast, chosen),
    }
    for name, (src, nodes) in variants.items():
        dst = work / (name.replace(" ", "_") + ".onnx")
        # the shipped export runs the parity guard; the comparison variants are taken as they are
        guard = {"min_cosine": 0.995} if name == "ORT int8 chosen" else {"min_cosine": None}
        q = quantize_onnx(src, dst, calib, "minmax", work, nodes=nodes, **guard)
        if name == "ORT int8 chosen":
            chosen = [c["node"] for c in q["quantized_convs"]]
        files[name] = dst

    sessions = {k: ort.InferenceSession(str(p), session_options(1), providers=["CPUExecutionProvider"]) for k, p in files.items()}
    parity = {"torch eager fp32": {"cosine_mean": 1.0, "max_abs": 0.0}}
    for k, s in sessions.items():
        parity[k] = float_parity_numbers(z_ref, s.run(None, {INPUT_NAME: held_out})[0])

    x = held_out[:1].copy()
    xt = torch.from_numpy(x)
    calls = {"torch eager fp32": (edge, [xt])}
    for k, s in sessions.items():
        calls[k] = ((lambda v, s=s: s.run(None, {INPUT_NAME: v})), [x])
    with torch.inference_mode():
        for call, inputs in calls.values():
            warm_up(call, inputs, 30)
        per_round: dict[str, list[float]] = {k: [] for k in calls}
        cpu_round: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(args.rounds):
            for k, (call, inputs) in calls.items():
                timed = time_calls(call, inputs, args.runs if k != "torch eager fp32" else max(args.runs // 4, 10))
                per_round[k].append(float(np.median(timed.wall_ns)) / 1000.0)
                cpu_round[k].append(float(np.median(timed.cpu_ns)) / 1000.0)
    ref, ref_cpu = np.array(per_round["ORT fp32"]), np.array(cpu_round["ORT fp32"])
    eager, eager_cpu = np.array(per_round["torch eager fp32"]), np.array(cpu_round["torch eager fp32"])
    rows = []
    for k, v in per_round.items():
        v, c = np.array(v), np.array(cpu_round[k])
        rows.append({"candidate": k, "p50_us": round(float(np.median(v)), 1), "best_round_p50_us": round(float(v.min()), 1),
                     "vs_ort_fp32": round(float(np.median(v / ref)), 3), "speedup_vs_eager": round(float(np.median(eager / v)), 1),
                     "cpu_p50_us": round(float(np.median(c)), 1), "cpu_vs_ort_fp32": round(float(np.median(c / ref_cpu)), 3),
                     "cpu_speedup_vs_eager": round(float(np.median(eager_cpu / c)), 1),
                     "cosine_mean": round(parity[k]["cosine_mean"], 6), "max_abs": parity[k]["max_abs"]})

    print(f"edge: {source}; onnxruntime {ort.__version__}, torch {torch.__version__}; batch 1, 1 thread; "
          f"{args.rounds} interleaved rounds x {args.runs} runs")
    print(f"chosen int8 convs: {chosen}")
    print("wall: perf_counter p50; cpu: the calling thread's CPU time p50 (all kernels run on it at 1 thread),")
    print("which a busy neighbour inflates far less than wall time. Ratios are medians of per-round ratios.")
    print("| candidate | wall p50 us | best-round wall p50 | wall vs ORT fp32 | wall speed-up vs eager | "
          "cpu p50 us | cpu vs ORT fp32 | cpu speed-up vs eager | cosine (held-out) | max-abs |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['candidate']} | {r['p50_us']:.1f} | {r['best_round_p50_us']:.1f} | {r['vs_ort_fp32']:.3f} | "
              f"{r['speedup_vs_eager']:.1f}x | {r['cpu_p50_us']:.1f} | {r['cpu_vs_ort_fp32']:.3f} | "
              f"{r['cpu_speedup_vs_eager']:.1f}x | {r['cosine_mean']:.6f} | {r['max_abs']:.3g} |")
    if args.json:
        args.json.write_text(json.dumps({"edge": source, "onnxruntime": ort.__version__, "rounds": args.rounds,
                                         "runs": args.runs, "chosen": chosen, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
