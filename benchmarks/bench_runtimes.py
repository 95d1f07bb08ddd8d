"""Side by side: the SiftFunnel edges of all three backbones - the reference CNN (1x1x32x32, shipped
checkpoint) and the VGG16-BN and ResNet18 edges (1x1x64x64, random init, seed 0: the same weights feed
every runtime) - in PyTorch eager and in the artifacts our backends export, at batch 1 and 32, with 1
thread (`--threads 1,2` adds all cores); plus each runtime's peak MAC rate, per-op profiles of every
artifact, the runners' own overhead against the raw runtime call, and a plain all-int8 LiteRT anchor.

Runtimes (each configuration in a fresh subprocess, so no thread pool or allocator state is shared):
  PyTorch eager fp32   `load_checkpoint()` edge, torch.set_num_threads(n), inference_mode: what a user runs
                       without this tool
  ORT fp32 / int8      the files our x86 backend exports (`export_edge("onnxruntime", ...)`, x86 profile options)
  LiteRT fp32 / int8   the files our rpi backend exports (`export_edge("litert", ...)`, rpi profile options)
The exported artifacts are timed through our runners (`runner.infer`, what `sift-deploy bench` times): float32
NCHW in, float32 z out, including the runner's own work (LiteRT int8: numpy quantize/dequantize of the I/O;
LiteRT at batch 32: the file is a static batch-1 graph, so 32 invocations per call).

Peak rate: one Conv2d(256, 256, 3, padding=1) on 1x256x56x56 (1.850 GMAC), timed in each runtime and precision
with the raw runtime call (ORT `sess.run`; LiteRT `set_tensor/invoke/get_tensor` with pre-quantized int8 input),
converted by the same backends. floor(config) = edge MACs x batch / peak(same runtime, precision, threads).

Timing: `sift_deploy.bench.timing`, the loop `sift-deploy bench` uses: warm-up, then one `perf_counter_ns` pair per
call with gc disabled (runners: activate and a first inference before the warm-up); p50 per process. Every configuration
runs in `--rounds` interleaved rounds (shuffled order each round); tables show the median over rounds. Before
each configuration the driver waits (up to `--max-wait` s) until other processes use < 0.3 cores, records their CPU
use while it ran, and re-runs it (up to `--retries` times, keeping the quietest run) if they used more. The calling
thread's CPU time per call is recorded too (robust to contention at 1 thread).

Extra rows (reference CNN, batch 1): `raw:<runtime>` times the runtime's own call on the same file (ORT
`sess.run`; LiteRT `set_tensor/invoke/get_tensor` with input already in the file's dtype) - the runner
overhead is runner p50 / raw p50 - 1; `litert-int8-all` is the edge converted all-int8 by our litert
backend (`float_tail = false`: int8 in, int8 out) and timed with the raw call, the anchor for LiteRT int8.
Per-op profiles (`runner.profile`, what `sift-deploy bench --profile` prints) are written to --profiles.

    .venv/bin/python benchmarks/bench_runtimes.py [--rounds 3] [--threads 1] [--backbones cnn,vgg16bn,resnet18]
        [--out benchmarks/RESULTS.md] [--work DIR] [--max-wait 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sift_deploy.bench.timing import CallTimes, time_calls, time_runner, warm_up  # noqa: E402

RUNTIMES = ("eager-fp32", "ort-fp32", "ort-int8", "litert-fp32", "litert-int8")
ARTIFACTS = RUNTIMES[1:]
ANCHOR = "litert-int8-all"
PREVIOUS_REFERENCE = ROOT / "tests" / "data" / "files" / "siftfunnel-cnn-fmnist-00e3390.safetensors"  # the anchor's weights
LABELS = {"eager-fp32": "PyTorch eager fp32", "ort-fp32": "ORT fp32", "ort-int8": "ORT int8",
          "litert-fp32": "LiteRT fp32", "litert-int8": "LiteRT int8", ANCHOR: "LiteRT all-int8 anchor (raw call)"}
BATCHES = (1, 32)
# name -> (architecture, input size, weights)
BACKBONES = {"cnn": ("siftfunnel-cnn", 32, "the shipped reference checkpoint"),
             "vgg16bn": ("siftfunnel-vgg16bn", 64, "random init (torch.manual_seed(0))"),
             "resnet18": ("siftfunnel-resnet18", 64, "random init (torch.manual_seed(0))")}
BACKBONE_LABELS = {"cnn": "CNN 32x32", "vgg16bn": "VGG16-BN edge 64x64", "resnet18": "ResNet18 edge 64x64"}
PEAK_SHAPE = (1, 256, 56, 56)
PEAK_MACS = 256 * 256 * 9 * 56 * 56
RUNS = {1: (50, 1000), 32: (10, 100), "peak": (5, 40)}  # (warm-up, timed) for the reference CNN
BIG_RUNS = {1: (3, 30), 32: (1, 6)}  # VGG16-BN / ResNet18 edges: 100-400 M MACs per image
PROFILE_RUNS = {"cnn": 100, "big": 5}
GOAL_SPEEDUP = 10.0
GOAL_INT8_B32 = 1.5
GOAL_ANCHOR = 1.2
GOAL_OVERHEAD = 0.10


# ============================================================================ child: one configuration


def _summary(calls: CallTimes) -> dict:
    us = calls.wall_ns / 1e3
    # CPU time of the calling thread: at 1 thread every kernel runs on it, so this is what the call costs
    # even when another process shares the core (wall time then includes waiting for it).
    return {"p50_us": float(np.percentile(us, 50)), "p90_us": float(np.percentile(us, 90)),
            "p99_us": float(np.percentile(us, 99)), "mean_us": float(us.mean()), "min_us": float(us.min()),
            "cpu_p50_us": float(np.percentile(calls.cpu_ns / 1e3, 50)), "runs": len(us)}


def _time(call, x_list, warmup: int, runs: int) -> dict:
    """A raw call (PyTorch eager, a runtime's own API) through bench's timing loop."""
    warm_up(call, x_list, warmup)
    return _summary(time_calls(call, x_list, runs))


def _edge_module(backbone: str, work: Path):
    """The float edge of a backbone: the reference checkpoint's, or the random-init one saved at export."""
    import torch

    from sift_deploy.models import ModelSpec, build_model

    if backbone == "cnn":
        from sift_deploy.checkpoint import load_checkpoint

        return load_checkpoint().model.edge.eval()
    arch, size, _ = BACKBONES[backbone]
    model = build_model(ModelSpec(arch=arch, input_size=size))
    model.edge.load_state_dict(torch.load(work / backbone / "edge.pt", weights_only=True))
    return model.edge.eval()


def _open_runner(backbone: str, runtime: str, work: Path, threads: int):
    from sift_deploy.backends import get_backend
    from sift_deploy.backends.base import Artifacts

    meta = json.loads((work / "artifacts.json").read_text())[backbone][runtime]
    backend = "onnxruntime" if runtime.startswith("ort") else "litert"
    return get_backend(backend).create_runner(Artifacts(folder=work / backbone / runtime), meta["file"],
                                              meta["details"], threads)


def _raw_call(runner):
    """The runtime's own call on the runner's file, and a function that turns float NCHW input into
    what that call takes (done outside the timed call)."""
    runner.activate()
    if runner.name == "onnxruntime":
        sess, name, out = runner.session, runner.input_name, runner.output_name
        return (lambda x: sess.run([out], {name: x})), (lambda x: np.ascontiguousarray(x, dtype=np.float32))
    return runner._call1, runner._to_model


def child(spec: dict) -> dict:
    runtime, threads, kind, work = spec["runtime"], spec["threads"], spec["kind"], Path(spec["work"])
    backbone = spec.get("backbone", "cnn")
    cpu0 = time.process_time()
    if kind in ("edge", "profile"):
        batch = spec["batch"]
        inputs = np.load(work / backbone / "inputs.npy")
        n = len(inputs) // batch
        x_list = [np.ascontiguousarray(inputs[i * batch:(i + 1) * batch]) for i in range(n)]
        warmup, runs = (RUNS if backbone == "cnn" else BIG_RUNS)[batch]
    else:
        rng = np.random.default_rng(0)
        x_list = [rng.standard_normal(PEAK_SHAPE, dtype=np.float32)]
        warmup, runs = RUNS["peak"]
    if kind == "profile":
        runner = _open_runner(backbone, runtime, work, threads)
        prof = runner.profile(x_list[0], runs=PROFILE_RUNS["cnn" if backbone == "cnn" else "big"],
                              warmup=5 if backbone == "cnn" else 2)
        out = Path(spec["profiles"]) / f"{backbone}-{runtime}-b{batch}-t{threads}.json"
        out.write_text(json.dumps({"backbone": backbone, "runtime": runtime, "batch": batch, "threads": threads,
                                   "load_average": os.getloadavg(), **prof}, indent=1))
        return {"profile": str(out), "shares": prof["shares"], "top": prof["ops"][:3],
                "cpu_s": time.process_time() - cpu0}
    if runtime == "eager-fp32":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
        if kind == "edge":
            module = _edge_module(backbone, work)
        else:
            torch.manual_seed(0)
            module = torch.nn.Conv2d(256, 256, 3, padding=1).eval()
        xs = [torch.from_numpy(x) for x in x_list]
        with torch.inference_mode():
            result = _time(module, xs, warmup, runs)
    elif kind == "edge" and (runtime.startswith("raw:") or runtime == ANCHOR):
        runner = _open_runner(backbone, runtime.removeprefix("raw:"), work, threads)
        try:
            call, prepare = _raw_call(runner)
            result = _time(call, [prepare(x) for x in x_list], warmup, runs)
        finally:
            runner.deactivate()
    elif kind == "edge":
        runner = _open_runner(backbone, runtime, work, threads)
        try:
            result = _summary(time_runner(runner, x_list, runs, warmup).calls)
            if hasattr(runner, "graph_batch"):
                result["graph_batch"] = runner.graph_batch(batch)
        finally:
            runner.deactivate()
    elif runtime.startswith("ort"):
        import onnxruntime as ort

        from sift_deploy.backends.onnxruntime.runner import session_options

        path = work / "peak" / f"{runtime}.onnx"
        sess = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        name, out = sess.get_inputs()[0].name, sess.get_outputs()[0].name
        result = _time(lambda x: sess.run([out], {name: x}), x_list, warmup, runs)
    else:
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(work / "peak" / f"{runtime}.tflite"), num_threads=threads)
        interp.allocate_tensors()
        inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
        x = x_list[0]
        if tuple(inp["shape"]) != x.shape:
            x = x.transpose(0, 2, 3, 1)
        if np.dtype(inp["dtype"]).kind in "iu":
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.rint(x / scale) + zero, info.min, info.max).astype(inp["dtype"])
        x = np.ascontiguousarray(x, dtype=inp["dtype"])

        def call(v):
            interp.set_tensor(inp["index"], v)
            interp.invoke()
            return interp.get_tensor(outp["index"])

        result = _time(call, [x], warmup, runs)
    result["cpu_s"] = time.process_time() - cpu0
    return result


# ============================================================================ driver: artifacts


def _calibration_inputs(mean: float, std: float, size: int):
    from sift_deploy.data.calibration import CALIBRATION_COUNT, DEFAULT_CALIBRATION, load_image_file
    from sift_deploy.data.preprocess import model_input

    images, _, _ = load_image_file(DEFAULT_CALIBRATION)
    calib = model_input(images[:CALIBRATION_COUNT], size, mean, std)
    held_out = model_input(images[CALIBRATION_COUNT:], size, mean, std)  # 256 real held-out images
    return calib, held_out


def _export_one(backend: str, edge, input_shape, precision: str, calib, out: Path, options: dict) -> dict:
    from sift_deploy.backends import export_edge
    from sift_deploy.backends.base import ExportRequest

    out.mkdir(parents=True, exist_ok=True)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    request = ExportRequest(edge=edge, input_shape=input_shape, precision=precision, calibration=calib,
                            calib_method="minmax", out_dir=out, options=options, seed=0)
    result = export_edge(backend, request)
    return {"file": result.files["edge"], "files": result.files, "details": result.details,
            "bytes": (out / result.files["edge"]).stat().st_size,
            "export_s": round(time.perf_counter() - wall0, 1), "export_cpu_s": round(time.process_time() - cpu0, 1),
            "export_load": [round(v, 2) for v in os.getloadavg()]}


def build_backbone(backbone: str, work: Path, log) -> dict:
    """Export one backbone's edge with our x86 and rpi backends (profile options), plus (CNN) the all-int8 anchor."""
    import torch

    from sift_deploy.checkpoint import load_checkpoint
    from sift_deploy.models import ModelSpec, build_model
    from sift_deploy.models.summary import summarize
    from sift_deploy.profiles import load_profile

    arch, size, weights = BACKBONES[backbone]
    folder = work / backbone
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = load_checkpoint()
    if backbone == "cnn":
        model, source = ckpt.model, {"path": str(ckpt.path), "sha256": ckpt.sha256}
    else:
        torch.manual_seed(0)
        model = build_model(ModelSpec(arch=arch, input_size=size)).eval()
        torch.save(model.edge.state_dict(), folder / "edge.pt")
        source = {"weights": weights}
    model.eval()
    summary = summarize(model)
    calib, held_out = _calibration_inputs(ckpt.mean, ckpt.std, size)
    np.save(folder / "inputs.npy", np.ascontiguousarray(held_out, dtype=np.float32))
    meta: dict = {"arch": arch, "source": source, "edge_macs": summary.edge.macs, "edge_params": summary.edge.params,
                  "input_shape": list(model.spec.input_shape), "transmitted_shape": list(summary.transmitted_shape)}
    profiles = {"ort": load_profile("x86"), "litert": load_profile("rpi")}
    for runtime in ARTIFACTS:
        family, precision = runtime.split("-")
        backend = "onnxruntime" if family == "ort" else "litert"
        log(f"{backbone}: exporting {LABELS[runtime]} ({backend} backend)")
        meta[runtime] = _export_one(backend, model.edge.eval(), model.spec.input_shape, precision, calib,
                                    folder / runtime, dict(profiles[family].backend_options))
    if backbone == "cnn":
        # LiteRT's XNNPACK aborts on the shipped reference's full-integer graph (the export refuses it), so the
        # anchor is the same edge with the previous reference's weights: same graph shape, same ops, same MACs
        log(f"{backbone}: exporting the all-int8 LiteRT anchor (float_tail = false, previous reference's weights)")
        anchor_edge = load_checkpoint(PREVIOUS_REFERENCE).model.edge.eval()
        meta[ANCHOR] = _export_one("litert", anchor_edge, model.spec.input_shape, "int8", calib, folder / ANCHOR,
                                   {**profiles["litert"].backend_options, "float_tail": False, "batch_variants": []})
        meta[ANCHOR]["weights"] = str(PREVIOUS_REFERENCE.relative_to(ROOT))
    return meta


def build_artifacts(work: Path, backbones: list[str], log) -> dict:
    """Every backbone's artifacts, and the peak conv in every runtime; reuses what artifacts.json already has."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    path = work / "artifacts.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    for backbone in backbones:
        if backbone not in meta:
            meta[backbone] = build_backbone(backbone, work, log)
            path.write_text(json.dumps(meta, indent=2, default=str))
    if "peak" not in meta:
        (work / "peak").mkdir(exist_ok=True)
        meta["peak"] = build_peak(work / "peak", log)
        path.write_text(json.dumps(meta, indent=2, default=str))
    return meta


def build_peak(out: Path, log) -> dict:
    """Conv2d(256, 256, 3, padding=1) on 1x256x56x56 as ORT fp32 / int8 (QDQ, per-channel, like our x86 int8
    convs) and LiteRT fp32 / int8 (PT2E per-channel, like our rpi backend)."""
    import torch

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).eval()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((8, *PEAK_SHAPE[1:]), dtype=np.float32)
    x = torch.from_numpy(calib[:1])
    notes = {}
    log("peak conv: ONNX fp32 / int8")
    with torch.no_grad():
        torch.onnx.export(conv, (x,), str(out / "ort-fp32.onnx"), input_names=["input"], output_names=["z"],
                          opset_version=17, do_constant_folding=True, dynamo=False)
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self):
            return next(self.items, None)

    quantize_static(str(out / "ort-fp32.onnx"), str(out / "ort-int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    extra_options={"WeightSymmetric": True, "ActivationSymmetric": False})
    notes["ort-int8"] = "quantize_static QDQ, per-channel QInt8 weights, QUInt8 activations (our x86 int8 conv recipe)"
    log("peak conv: LiteRT fp32 / int8 (our litert backend)")
    from sift_deploy.backends import export_edge
    from sift_deploy.backends.base import ExportRequest

    for precision in ("fp32", "int8"):
        tmp = out / f"litert-{precision}"
        tmp.mkdir(exist_ok=True)
        request = ExportRequest(edge=conv, input_shape=PEAK_SHAPE[1:], precision=precision, calibration=calib,
                                calib_method="minmax", out_dir=tmp, options={"layout": "NCHW", "float_tail": False}, seed=0)
        result = export_edge("litert", request)
        (tmp / result.files["edge"]).replace(out / f"litert-{precision}.tflite")
        notes[f"litert-{precision}"] = f"our litert backend, {precision}"
    return {"macs": PEAK_MACS, "shape": list(PEAK_SHAPE), "notes": notes}


# ============================================================================ driver: scheduling


def _cpu_jiffies() -> tuple[int, int]:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    return sum(values[:8]), idle


def busy_cores(seconds: float = 1.0) -> float:
    t0, i0 = _cpu_jiffies()
    time.sleep(seconds)
    t1, i1 = _cpu_jiffies()
    cores = os.cpu_count() or 1
    return cores * (1 - (i1 - i0) / max(1, t1 - t0))


def wait_quiet(threshold: float, max_wait: float) -> tuple[float, float]:
    """Wait until two consecutive 1-s samples show < threshold busy cores; (waited s, last busy cores)."""
    started = time.monotonic()
    calm = 0
    busy = busy_cores()
    while time.monotonic() - started < max_wait:
        calm = calm + 1 if busy < threshold else 0
        if calm >= 2:
            break
        busy = busy_cores()
    return time.monotonic() - started, busy


def run_child(spec: dict) -> dict:
    ticks = os.sysconf("SC_CLK_TCK")
    t0, i0 = _cpu_jiffies()
    ru0 = os.times()
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    ru1 = os.times()
    t1, i1 = _cpu_jiffies()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    result = json.loads(lines[-1])
    total_busy = (t1 - t0 - (i1 - i0)) / ticks
    child_cpu = (ru1.children_user - ru0.children_user) + (ru1.children_system - ru0.children_system)
    wall = (t1 - t0) / ticks / (os.cpu_count() or 1)
    result["other_cores"] = round(max(0.0, (total_busy - child_cpu) / max(wall, 1e-9)), 3)
    return result


def configurations(thread_set: list[int], backbones: list[str]) -> list[dict]:
    out = [{"kind": "edge", "backbone": bb, "runtime": r, "batch": b, "threads": t}
           for bb in backbones for r in RUNTIMES for b in BATCHES for t in thread_set]
    if "cnn" in backbones:  # runner overhead and the all-int8 anchor: the reference CNN at batch 1
        out += [{"kind": "edge", "backbone": "cnn", "runtime": r, "batch": 1, "threads": t}
                for r in [f"raw:{a}" for a in ARTIFACTS] + [ANCHOR] for t in thread_set]
    out += [{"kind": "peak", "runtime": r, "threads": t} for r in RUNTIMES for t in thread_set]
    return out


def profile_configurations(thread_set: list[int], backbones: list[str]) -> list[dict]:
    """Per-op profiles: every artifact at batch 1, and the reference CNN's at batch 32 too (1 thread)."""
    out = [{"kind": "profile", "backbone": bb, "runtime": r, "batch": 1, "threads": 1} for bb in backbones for r in ARTIFACTS]
    if "cnn" in backbones:
        out += [{"kind": "profile", "backbone": "cnn", "runtime": r, "batch": 32, "threads": 1} for r in ARTIFACTS]
    return out


def key(c: dict) -> str:
    return f"{c['kind']}|{c.get('backbone', '-')}|{c['runtime']}|{c.get('batch', 1)}|{c['threads']}"


# ============================================================================ driver: report


def fmt_us(v: float | None) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def summarise(results: dict[str, list[dict]]) -> dict[str, dict]:
    out = {}
    for k, rounds in results.items():
        ok = [r for r in rounds if "error" not in r]
        if not ok:
            out[k] = {"error": rounds[-1].get("error", "no result") if rounds else "not run"}
            continue
        p50s = [r["p50_us"] for r in ok]
        out[k] = {"p50_us": statistics.median(p50s), "cpu_p50_us": statistics.median(r["cpu_p50_us"] for r in ok),
                  "p90_us": statistics.median(r["p90_us"] for r in ok),
                  "p99_us": statistics.median(r["p99_us"] for r in ok), "p50_min_us": min(p50s), "p50_max_us": max(p50s),
                  "rounds": len(ok), "other_cores_max": max(r.get("other_cores", 0) for r in ok),
                  "load1_median": statistics.median(r.get("load1", 0) for r in ok), "graph_batch": ok[0].get("graph_batch")}
    return out


def write_results(out: Path, meta: dict, summary: dict, env: dict, profiles: dict) -> None:
    thread_set = env["thread_set"]
    backbones = env["backbones"]

    def stat(backbone, runtime, batch, threads, kind="edge"):
        return summary.get(key({"kind": kind, "backbone": backbone if kind == "edge" else "-", "runtime": runtime,
                                "batch": batch, "threads": threads}), {})

    def p50(backbone, runtime, batch, threads, kind="edge"):
        return stat(backbone, runtime, batch, threads, kind).get("p50_us")

    def peak(runtime, threads):  # MAC/s
        v = p50("-", runtime, 1, threads, "peak")
        return PEAK_MACS / (v / 1e6) if v else None

    def verdict(ok: bool, miss: str) -> str:
        return "met" if ok else f"**missed: {miss}**"

    L: list[str] = []
    L += ["# Runtime benchmark: the SiftFunnel edges, PyTorch eager vs our exported artifacts", ""]
    L += [f"Generated by `benchmarks/bench_runtimes.py` on {env['date']} in one run on one machine: "
          f"**{env['cpu']}** (ISA: {env.get('isa', 'n/a')}), {env['cores']} cores, {env['os']}, Python {env['python']}; "
          + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", ""]
    L += ["## Models", "", "| backbone | architecture | input | weights | edge MACs / image | edge params | z |",
          "|---|---|---|---|---|---|---|"]
    for bb in backbones:
        m = meta[bb]
        weights = f"reference checkpoint (sha256 {m['source']['sha256'][:12]})" if "sha256" in m["source"] else m["source"]["weights"]
        L.append(f"| {BACKBONE_LABELS[bb]} | `{m['arch']}` | 1x{'x'.join(map(str, m['input_shape']))} | {weights} | "
                 f"{m['edge_macs']:,} | {m['edge_params']:,} | {'x'.join(map(str, m['transmitted_shape']))} |")
    L += ["", "Inputs: the 256 committed held-out real images (Fashion-MNIST), at the backbone's input size, cycled. "
          "The same exported file feeds every runtime row of its backbone.", ""]
    L += ["## Artifacts and export times", "",
          "Exported with `export_edge` (x86 profile options for ORT, rpi profile options for LiteRT, as `sift-deploy "
          "export` does, without the float reference and parity runs), timed on this machine while other work shared it: "
          "wall s, the exporting process's CPU s, and the 1-min load average at the end.", "",
          "| backbone | artifact | file(s) | bytes | export wall s | export CPU s | load |", "|---|---|---|---|---|---|---|"]
    for bb in backbones:
        for r in (*ARTIFACTS, ANCHOR):
            a = meta[bb].get(r)
            if not a:
                continue
            files = ", ".join(f"`{f}`" for f in a.get("files", {"edge": a["file"]}).values())
            L.append(f"| {BACKBONE_LABELS[bb]} | {LABELS[r]} | {files} | {a['bytes']:,} | {a.get('export_s', 'n/a')} | "
                     f"{a.get('export_cpu_s', 'n/a')} | {a.get('export_load', ['n/a'])[0]} |")
    L += ["", "Method: every (backbone, runtime, batch, threads) configuration runs in a fresh subprocess; warm-up / timed "
          f"calls: CNN {RUNS[1][0]} / {RUNS[1][1]} at batch 1, {RUNS[32][0]} / {RUNS[32][1]} at batch 32; VGG16-BN and "
          f"ResNet18 {BIG_RUNS[1][0]} / {BIG_RUNS[1][1]} and {BIG_RUNS[32][0]} / {BIG_RUNS[32][1]}. One "
          "`perf_counter_ns` pair per call (`sift_deploy.bench.timing`), gc off; p50 per process. "
          f"{env['rounds']} interleaved rounds in shuffled order; the tables give the **median over rounds**. PyTorch "
          "eager: `torch.set_num_threads(n)`, `inference_mode`, `edge(x)`. Artifacts: our runners' `infer(x)` (float32 "
          "NCHW in, float32 z out) - what `sift-deploy bench` times, including the runner's own work (LiteRT int8: "
          "numpy quantize of the input). LiteRT at batch 32 runs the bundle's batch-32 graph once per call "
          "(`batch_variants = [32]`).", ""]
    L += [f"Machine load: **this run shared 2 cores with other agents' work.** Load average at start {env['load_start']}, "
          f"at end {env['load_end']}; 1-min load at the end of each configuration: median {env['load1_median']:.2f}, "
          f"max {env['load1_max']:.2f}. The driver waited up to {env['max_wait']} s for < {env['quiet_threshold']} busy "
          f"cores before each configuration and re-ran a disturbed one up to {env['retries']} times: {env['configs_run']} "
          f"child processes for {env['configs_planned']} configuration runs; {env['waits_exhausted']} kept runs were still "
          "disturbed. Absolute times are inflated and noisy; **ratios between interleaved rows are the result**. The "
          "calling-thread CPU p50 (full distribution) is robust to sharing at 1 thread.", ""]

    for threads in thread_set:
        L += [f"## p50 latency (µs), {threads} thread(s); in brackets: speed-up over PyTorch eager fp32", ""]
        L += ["| backbone | batch | MACs | " + " | ".join(LABELS[r] for r in RUNTIMES) + " |",
              "|---|---|---|" + "---|" * len(RUNTIMES)]
        for bb in backbones:
            for batch in BATCHES:
                eager = p50(bb, "eager-fp32", batch, threads)
                cells = []
                for r in RUNTIMES:
                    v = p50(bb, r, batch, threads)
                    cells.append("n/a" if v is None else f"{fmt_us(v)} ({eager / v:.1f}x)" if eager else fmt_us(v))
                L.append(f"| {BACKBONE_LABELS[bb]} | {batch} | {meta[bb]['edge_macs'] * batch / 1e6:,.1f} M | "
                         + " | ".join(cells) + " |")
        L.append("")

    L += ["## Goals (1 thread)", "", "| goal | measured | verdict |", "|---|---|---|"]
    t = 1
    for bb in backbones:
        for family in ("ort", "litert"):
            for batch in BATCHES:
                f32, i8 = p50(bb, f"{family}-fp32", batch, t), p50(bb, f"{family}-int8", batch, t)
                name = f"{BACKBONE_LABELS[bb]} b{batch}: {LABELS[f'{family}-int8']} no slower than fp32"
                if f32 is None or i8 is None:
                    L.append(f"| {name} | n/a | not measured |")
                    continue
                L.append(f"| {name} | int8 / fp32 = {i8 / f32:.2f} ({fmt_us(i8)} vs {fmt_us(f32)} µs) | "
                         f"{verdict(i8 <= f32, f'{(i8 / f32 - 1) * 100:.0f}% slower')} |")
                if bb != "cnn" and batch == 32:
                    L.append(f"| {BACKBONE_LABELS[bb]} b32: {LABELS[f'{family}-int8']} >= {GOAL_INT8_B32}x faster than "
                             f"fp32 | {f32 / i8:.2f}x | {verdict(f32 / i8 >= GOAL_INT8_B32, f'{f32 / i8:.2f}x < {GOAL_INT8_B32}x')} |")
    if "cnn" in backbones:
        eager1 = p50("cnn", "eager-fp32", 1, t)
        for r in ARTIFACTS:
            v = p50("cnn", r, 1, t)
            if v is None or eager1 is None:
                continue
            sp = eager1 / v
            L.append(f"| CNN b1: {LABELS[r]} >= {GOAL_SPEEDUP:g}x faster than eager ({fmt_us(eager1)} µs) | {sp:.1f}x "
                     f"({fmt_us(v)} µs) | {verdict(sp >= GOAL_SPEEDUP, f'by {GOAL_SPEEDUP / sp:.2f}x (needs <= {fmt_us(eager1 / GOAL_SPEEDUP)} µs)')} |")
        li8, anchor = p50("cnn", "litert-int8", 1, t), p50("cnn", ANCHOR, 1, t)
        if li8 and anchor:
            L.append(f"| CNN b1: LiteRT int8 within {GOAL_ANCHOR}x of the all-int8 anchor | {li8 / anchor:.2f}x "
                     f"({fmt_us(li8)} vs {fmt_us(anchor)} µs) | {verdict(li8 / anchor <= GOAL_ANCHOR, f'{li8 / anchor:.2f}x')} |")
        for r in ARTIFACTS:
            v, raw = p50("cnn", r, 1, t), p50("cnn", f"raw:{r}", 1, t)
            if v and raw:
                over = v / raw - 1
                L.append(f"| CNN b1: {LABELS[r]} runner overhead (`infer` vs raw call) <= {GOAL_OVERHEAD:.0%} of p50 | "
                         f"{over:+.1%} ({fmt_us(v)} vs {fmt_us(raw)} µs) | "
                         f"{verdict(over <= GOAL_OVERHEAD, f'{over:.0%}')} |")
    for bb in backbones:
        for r in ("litert-fp32", "litert-int8"):
            g = stat(bb, r, 32, t).get("graph_batch")
            if g is not None:
                L.append(f"| {BACKBONE_LABELS[bb]} b32: {LABELS[r]} runs a batched graph | graph batch {g} | "
                         f"{verdict(g == 32, f'batch-{g} graph')} |")
    L.append("")

    L += [f"## Peak-rate probe: Conv2d 256->256 3x3 on 1x256x56x56 ({PEAK_MACS / 1e9:.3f} GMAC)", "",
          "| runtime | threads | p50 ms | rounds: p50 min-max ms | peak GMAC/s |", "|---|---|---|---|---|"]
    for r in RUNTIMES:
        for threads in thread_set:
            st = stat("-", r, 1, threads, "peak")
            if "p50_us" not in st:
                L.append(f"| {LABELS[r]} | {threads} | n/a ({st.get('error', 'not run')}) | | |")
                continue
            L.append(f"| {LABELS[r]} | {threads} | {st['p50_us'] / 1e3:.2f} | {st['rounds']}: {st['p50_min_us'] / 1e3:.2f}-"
                     f"{st['p50_max_us'] / 1e3:.2f} | {PEAK_MACS / (st['p50_us'] / 1e6) / 1e9:.1f} |")
    L += ["", "Peak conversions: " + "; ".join(f"{k}: {v}" for k, v in meta["peak"]["notes"].items()) + ".", ""]

    for threads in thread_set:
        L += [f"## p50 / compute floor, {threads} thread(s) (floor = edge MACs x batch / same-runtime peak)", "",
              "| backbone | batch | " + " | ".join(f"{LABELS[r]} floor µs -> ratio" for r in RUNTIMES) + " |",
              "|---|---|" + "---|" * len(RUNTIMES)]
        for bb in backbones:
            for batch in BATCHES:
                cells = []
                for r in RUNTIMES:
                    v, pk = p50(bb, r, batch, threads), peak(r, threads)
                    if v is None or pk is None:
                        cells.append("n/a")
                        continue
                    floor = meta[bb]["edge_macs"] * batch / pk * 1e6
                    cells.append(f"{fmt_us(floor)} -> {v / floor:.0f}x")
                L.append(f"| {BACKBONE_LABELS[bb]} | {batch} | " + " | ".join(cells) + " |")
        L.append("")

    L += ["## Per-op profiles", "",
          "`runner.profile` (what `sift-deploy bench --profile` prints), 1 thread, run after the timed rounds: ORT from its "
          "profiler (the optimised graph, median per node), LiteRT by per-node timing of prefix graphs (it has no Python "
          "op profiler). Full profiles: `benchmarks/profiles/<backbone>-<artifact>-b<batch>-t1.json`.", "",
          "| backbone | artifact | batch | quantize/dequantize | layout | top 3 ops (share) |", "|---|---|---|---|---|---|"]
    for k, r in profiles.items():
        _, bb, runtime, batch, _ = k.split("|")
        if "shares" not in r:
            L.append(f"| {BACKBONE_LABELS[bb]} | {LABELS[runtime]} | {batch} | error: {r.get('error')} | | |")
            continue
        top = ", ".join(f"{o['node'][:40]} {o['op_type']} ({o['share']:.0%})" for o in r["top"])
        L.append(f"| {BACKBONE_LABELS[bb]} | {LABELS[runtime]} | {batch} | {r['shares']['quantize_dequantize']:.1%} | "
                 f"{r['shares']['layout']:.1%} | {top} |")
    L.append("")

    L += ["## Full distribution: median over rounds of p50 / p90 / p99 (µs), spread of p50 across rounds", "",
          "| backbone | runtime | batch | threads | p50 | p90 | p99 | p50 per round min-max (n) | per-image p50 µs | "
          "calling-thread CPU p50 µs | other cores (max) | load1 (median) |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [(bb, r, b) for bb in backbones for r in RUNTIMES for b in BATCHES]
    if "cnn" in backbones:
        rows += [("cnn", f"raw:{a}", 1) for a in ARTIFACTS] + [("cnn", ANCHOR, 1)]
    for bb, r, batch in rows:
        for threads in thread_set:
            st = stat(bb, r, batch, threads)
            label = LABELS.get(r) or f"{LABELS[r.removeprefix('raw:')]} raw call"
            if "p50_us" not in st:
                L.append(f"| {BACKBONE_LABELS[bb]} | {label} | {batch} | {threads} | error: {st.get('error', 'not run')} | | | | | | | |")
                continue
            spread = (st["p50_max_us"] - st["p50_min_us"]) / st["p50_us"] * 100
            L.append(f"| {BACKBONE_LABELS[bb]} | {label} | {batch} | {threads} | {fmt_us(st['p50_us'])} | {fmt_us(st['p90_us'])} | "
                     f"{fmt_us(st['p99_us'])} | {fmt_us(st['p50_min_us'])}-{fmt_us(st['p50_max_us'])} "
                     f"({spread:.0f}%, n={st['rounds']}) | {st['p50_us'] / batch:.1f} | {fmt_us(st['cpu_p50_us'])} | "
                     f"{st['other_cores_max']:.2f} | {st['load1_median']:.2f} |")
    L += ["", "Compare with `/work/shared/research/runtime-anchors.md` (CNN family, measured on an idle 2-core AMD EPYC "
          "with the raw runtime calls and its own exports). No test asserts these wall times.", ""]
    out.write_text("\n".join(L))


# ============================================================================ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw per-round results here")
    parser.add_argument("--work", type=Path, help="artifact folder (default: a temporary one); reused if it has artifacts.json")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts (default 1; e.g. 1,2)")
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated: " + ", ".join(BACKBONES))
    parser.add_argument("--profiles", type=Path, default=ROOT / "benchmarks" / "profiles",
                        help="where the per-op profiles (JSON) go")
    parser.add_argument("--quiet-threshold", type=float, default=0.3, help="busy cores (others) that count as quiet")
    parser.add_argument("--max-wait", type=float, default=60.0, help="seconds to wait for a quiet machine per configuration")
    parser.add_argument("--retries", type=int, default=2, help="re-runs of a configuration disturbed by other processes")
    parser.add_argument("--from-results", type=Path, help="only re-render --out from WORK/results.json of an earlier run")
    args = parser.parse_args()
    if args.from_results:
        saved = json.loads(args.from_results.read_text())
        meta = json.loads((args.from_results.parent / "artifacts.json").read_text())
        write_results(args.out, meta, saved["summary"], saved["env"], saved["profiles"])
        return
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    work = args.work or Path(tempfile.mkdtemp(prefix="sift-bench-runtimes-"))
    work.mkdir(parents=True, exist_ok=True)
    backbones = [b for b in args.backbones.split(",") if b]
    unknown = set(backbones) - set(BACKBONES)
    if unknown:
        parser.error(f"unknown backbone(s) {sorted(unknown)}; use {', '.join(BACKBONES)}")
    thread_set = sorted({int(t) for t in args.threads.split(",")})
    meta = build_artifacts(work, backbones, log)
    cores = os.cpu_count() or 1
    configs = configurations(thread_set, backbones)
    results: dict[str, list[dict]] = {key(c): [] for c in configs}
    load_start = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    loads: list[float] = []
    exhausted = 0
    runs = 0
    for rnd in range(args.rounds):
        order = configs[:]
        random.Random(rnd).shuffle(order)
        for i, c in enumerate(order):
            best = None
            for attempt in range(1 + args.retries):  # re-run a configuration that another process disturbed
                waited, busy = wait_quiet(args.quiet_threshold, args.max_wait)
                r = run_child({**c, "work": str(work)})
                r.update(waited_s=round(waited, 1), busy_before=round(busy, 2), attempt=attempt + 1,
                         load1=round(os.getloadavg()[0], 2))
                runs += 1
                if best is None or r.get("other_cores", 9) < best.get("other_cores", 9):
                    best = r
                if "error" in r or r["other_cores"] < args.quiet_threshold:
                    break
            if "error" not in best and best["other_cores"] >= args.quiet_threshold:
                exhausted += 1
            r = best
            loads.append(r["load1"])
            results[key(c)].append(r)
            log(f"round {rnd + 1}/{args.rounds} [{i + 1}/{len(order)}] {key(c)}: "
                + (f"p50 {r['p50_us']:.1f} us, others {r['other_cores']:.2f} cores, load {r['load1']}"
                   if "p50_us" in r else f"ERROR {r['error']}"))
    profiles_dir = args.profiles
    profiles_dir.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, dict] = {}
    for c in profile_configurations(thread_set, backbones):
        wait_quiet(args.quiet_threshold, args.max_wait)
        r = run_child({**c, "work": str(work), "profiles": str(profiles_dir)})
        profiles[key(c)] = r
        log(f"profile {key(c)}: " + (f"{r['shares']}" if "shares" in r else f"ERROR {r.get('error')}"))
    summary = summarise(results)
    import importlib.metadata as md

    versions = {}
    for package in ("torch", "onnxruntime", "ai-edge-litert", "litert-torch", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            pass
    from sift_deploy.bench.provenance import cpu_model, os_release

    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    isa = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "asimd", "asimddp",
                                "i8mm") if f in flags) or "unknown"
    env = {"thread_set": thread_set, "backbones": backbones, "load1_median": statistics.median(loads or [0]),
           "load1_max": max(loads or [0]), "isa": isa, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(), "cores": cores,
           "os": os_release(), "python": platform.python_version(), "versions": versions, "rounds": args.rounds,
           "quiet_threshold": args.quiet_threshold, "max_wait": args.max_wait, "load_start": load_start,
           "load_end": " / ".join(f"{v:.2f}" for v in os.getloadavg()), "waits_exhausted": exhausted,
           "configs_run": runs, "configs_planned": len(configs) * args.rounds, "retries": args.retries}
    (work / "results.json").write_text(json.dumps({"env": env, "summary": summary, "profiles": profiles}, indent=1,
                                                  default=str))  # re-render with --from-results
    write_results(args.out, meta, summary, env, profiles)
    if args.json:
        slim = {bb: {k: v for k, v in m.items() if k not in (*ARTIFACTS, ANCHOR)} for bb, m in meta.items() if bb in BACKBONES}
        args.json.write_text(json.dumps({"env": env, "meta": slim, "results": results, "summary": summary,
                                         "profiles": profiles}, indent=1, default=str))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
