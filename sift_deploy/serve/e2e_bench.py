"""`sift-deploy bench BUNDLE --server URL`: the split pipeline measured end to end against Triton.

Three phases, on the bundle's stored reference images:

1. latency (one client, one image per request): per request, the edge artifact here (+ wire
   encoding), the round trip, and Triton's own statistics read between requests (untimed), so
   each request splits exactly into edge | network + queue | cloud compute, with Triton's queue
   time shown on its own. p50 / p90 / p99 of each part.
2. throughput: `clients` threads, each with its own connection, send the wire-format features of
   the reference images (the edge runs on each device, not here) for `duration_s` seconds;
   requests/s, images/s, client-side latency percentiles, failures.
3. bytes on the wire: one client talks through a counting TCP proxy on 127.0.0.1, so every byte
   it sends and receives (payload and protocol framing: HTTP/2 + gRPC or HTTP/1.1 headers) is
   counted at the socket; per request in steady state, and the connection set-up once. Shown next
   to the payload computed from the wire format (what `sift-deploy bench` reports today).
"""

from __future__ import annotations

import platform
import socket
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .. import __version__
from ..bundle import PARITY_REFERENCE, require_intact
from ..data.preprocess import model_input
from ..errors import SiftError
from .client import TritonEdgeClient, WireClient, parse_server

SCHEMA_VERSION = 1
ProgressFn = Callable[[str, int, int], None]


def percentiles(values_s: list[float] | np.ndarray) -> dict:
    ms = np.asarray(values_s, np.float64) * 1e3
    if len(ms) == 0:
        return {"count": 0}
    return {"count": int(len(ms)), "mean_ms": float(ms.mean()), "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


class CountingProxy:
    """A TCP proxy on 127.0.0.1 that forwards to `target` and counts the bytes each way."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.sent = 0  # client -> server
        self.received = 0  # server -> client
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, "sent"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "received"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counter: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self.sent, self.received

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


def _reference_inputs(bundle_dir: Path, manifest: dict) -> np.ndarray:
    with np.load(Path(bundle_dir) / PARITY_REFERENCE) as ref:
        images = ref["images"]
    norm = manifest["input"]["normalization"]
    return model_input(images, int(manifest["model"]["input_size"]), norm["mean"], norm["std"])


def _delta(after: dict, before: dict, name: str) -> float:
    return (after[name][1] - before[name][1]) / 1e9


def latency_phase(client: TritonEdgeClient, inputs: np.ndarray, iterations: int, warmup: int,
                  progress: ProgressFn) -> dict:
    parts = {k: [] for k in ("edge", "round_trip", "network", "queue", "cloud_compute", "network_and_queue", "total")}
    for i in range(warmup):
        client.infer(inputs[i % len(inputs)][None])
    for i in range(iterations):
        before = client.wire.statistics()
        client.infer(inputs[i % len(inputs)][None])
        after = client.wire.statistics()
        t = client.last_timing
        server_total = _delta(after, before, "success")
        compute = sum(_delta(after, before, k) for k in ("compute_input", "compute_infer", "compute_output"))
        queue = _delta(after, before, "queue")
        edge = t["edge_s"] + t["encode_s"]
        parts["edge"].append(edge)
        parts["round_trip"].append(t["rpc_s"])
        parts["network"].append(max(t["rpc_s"] - server_total, 0.0))
        parts["queue"].append(queue)
        parts["cloud_compute"].append(compute)
        parts["network_and_queue"].append(max(t["rpc_s"] - compute, 0.0))
        parts["total"].append(edge + t["rpc_s"])
        progress("latency", i + 1, iterations)
    return {"iterations": iterations, "warmup": warmup, "batch": 1,
            "split": {k: percentiles(v) for k, v in parts.items()},
            "method": "per request: edge = edge artifact + wire encoding here; cloud_compute = Triton's "
                      "compute_input + compute_infer + compute_output; queue = Triton's queue time; network = "
                      "round trip - Triton's request time; network_and_queue = round trip - cloud_compute "
                      "(Triton statistics read before and after each request, outside the timed window)"}


def throughput_phase(server_url: str, serving: dict, wire_params: dict, z: np.ndarray, clients: int,
                     duration_s: float, timeout_s: float, progress: ProgressFn, per_client: int = 10**9) -> dict:
    # one connection per thread, made in that thread (tritonclient.http's gevent sockets belong to one thread)
    stats = WireClient(server_url, serving, wire_params, timeout_s).connect()
    wires: list[WireClient | None] = [None] * clients
    payloads = [stats.encode(z[i:i + 1]) for i in range(len(z))]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    failures: list[list[str]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def work(k: int) -> None:
        wire = wires[k] = WireClient(server_url, serving, wire_params, timeout_s).connect()
        start.wait()
        i, sent = k, 0
        while time.perf_counter() < deadline[0] and sent < per_client:
            sent += 1
            t0 = time.perf_counter()
            try:
                wire.send_arrays(payloads[i % len(payloads)])
                latencies[k].append(time.perf_counter() - t0)
            except SiftError as exc:
                failures[k].append(str(exc))
            i += clients
        wire.close()

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    before = stats.statistics()
    deadline[0] = time.perf_counter() + duration_s
    began = time.perf_counter()
    start.wait()
    while any(t.is_alive() for t in threads):
        progress("throughput", min(int(time.perf_counter() - began), int(duration_s)), int(duration_s))
        time.sleep(0.2)
    elapsed = time.perf_counter() - began
    after = stats.statistics()
    stats.close()
    done = sum(len(x) for x in latencies)
    executions = after["execution_count"] - before["execution_count"]
    inferences = after["inference_count"] - before["inference_count"]
    fails = [f for x in failures for f in x]
    return {"clients": clients, "seconds": round(elapsed, 3), "requests": done, "failures": len(fails),
            "first_failure": fails[0] if fails else None, "requests_per_s": done / elapsed,
            "images_per_s": done / elapsed, "latency_under_load": percentiles([v for x in latencies for v in x]),
            "server": {"inferences": inferences, "executions": executions,
                       "mean_batch": inferences / executions if executions else None,
                       "queue_ms_per_request": _delta(after, before, "queue") * 1e3 / max(inferences, 1),
                       "compute_ms_per_execution": sum(_delta(after, before, k) for k in
                                                       ("compute_input", "compute_infer", "compute_output"))
                       * 1e3 / max(executions, 1)},
            "method": "each client thread has its own connection and sends one image's wire-format features "
                      "per request, back to back (--iterations requests each, at most duration_s); the edge "
                      "runs on each device, not here"}


def bytes_phase(server_url: str, serving: dict, wire_params: dict, z: np.ndarray, requests: int,
                timeout_s: float) -> dict:
    protocol, address = parse_server(server_url)
    host, port = address.rsplit(":", 1)
    proxy = CountingProxy((host, int(port)))
    try:
        client = WireClient(f"{protocol}://127.0.0.1:{proxy.port}", serving, wire_params, timeout_s).connect()
        client.check_ready()
        client.send(z[:1])  # connection set-up and the first request
        setup_sent, setup_received = proxy.counts()
        for i in range(requests):
            client.send(z[i % len(z)][None])
        time.sleep(0.2)  # let the proxy count the last reply's trailing frames
        sent, received = proxy.counts()
        client.close()
    finally:
        proxy.close()
    payload = sum(a.nbytes for _, a in client.encode(z[:1]))
    logits_bytes = int(np.prod(serving["outputs"][0]["dims"])) * 4
    numel = int(np.prod(z.shape[1:]))
    return {
        "protocol": protocol, "requests": requests, "connections": proxy.connections,
        "measured_per_request": {"sent": (sent - setup_sent) / requests, "received": (received - setup_received) / requests,
                                 "total": (sent + received - setup_sent - setup_received) / requests},
        "connection_setup_and_first_request": {"sent": setup_sent, "received": setup_received},
        "payload_per_request": {"sent": payload, "received": logits_bytes,
                                "detail": {i["name"]: f"{i['data_type']} {i['dims']}" for i in serving["inputs"]}},
        "computed_today": {"int8_per_image": numel, "scales_once_per_session": 4 * len(wire_params["scales"]),
                           "fp32_per_image": numel * 4,
                           "note": "what `sift-deploy bench` reports: z only, scales once per session; over "
                                   "Triton the scales travel with every request (Triton inputs are batched)"},
        "method": "a counting TCP proxy on 127.0.0.1 between this client and the server; steady state = bytes "
                  "after the first request, divided by the requests",
    }


def run_e2e_bench(bundle_dir: Path, server_url: str, iterations: int = 200, warmup: int = 20, clients: int = 1,
                  duration_s: float = 10.0, bytes_requests: int = 100, timeout_s: float = 10.0,
                  threads: int | None = None, on_progress: ProgressFn | None = None) -> dict:
    if iterations < 1 or warmup < 0 or clients < 1 or duration_s <= 0:
        raise SiftError("--iterations and --clients must be at least 1, --warmup at least 0")
    progress = on_progress or (lambda *_: None)
    manifest = require_intact(bundle_dir)
    inputs = _reference_inputs(bundle_dir, manifest)
    client = TritonEdgeClient(bundle_dir, server_url, threads=threads, timeout_s=timeout_s, manifest=manifest)
    with client:
        latency = latency_phase(client, inputs, iterations, warmup, progress)
        z = client.edge(inputs)
        versions = client.versions()
    serving, wire_params = manifest["serving"], manifest["features"]["wire_int8"]
    throughput = throughput_phase(server_url, serving, wire_params, z, clients, duration_s, timeout_s, progress,
                                  per_client=iterations)
    wire_bytes = bytes_phase(server_url, serving, wire_params, z, bytes_requests, timeout_s)
    report = {
        "schema_version": SCHEMA_VERSION, "kind": "e2e", "tool": {"name": "sift-deploy", "version": __version__},
        "bundle": str(bundle_dir), "server": server_url, "model": serving["model"], "wire": serving["wire"],
        "backend": manifest["backend"], "precision": manifest["precision"],
        "latency": latency, "throughput": throughput, "bytes": wire_bytes,
        "provenance": {"machine": platform.machine(), "python": platform.python_version(), **versions},
    }
    report["failures"] = ([f"{throughput['failures']} of {throughput['requests'] + throughput['failures']} requests "
                           f"failed under load: {throughput['first_failure']}"] if throughput["failures"] else [])
    report["passed"] = not report["failures"]
    return report


def render_tables(report: dict) -> list:
    from rich.table import Table

    lat = report["latency"]["split"]
    t1 = Table(title=f"end to end via {report['server']} ({report['wire']} wire, batch 1, "
                     f"{report['latency']['iterations']} requests)", title_justify="left")
    for col in ("part", "p50 ms", "p90 ms", "p99 ms", "mean ms"):
        t1.add_column(col, justify="left" if col == "part" else "right")
    names = {"edge": "edge (artifact + wire encoding)", "network_and_queue": "network + queue",
             "network": "  of which network", "queue": "  of which Triton queue", "cloud_compute": "cloud (Triton compute)",
             "total": "total"}
    for key, label in names.items():
        s = lat[key]
        t1.add_row(label, f"{s['p50_ms']:.3f}", f"{s['p90_ms']:.3f}", f"{s['p99_ms']:.3f}", f"{s['mean_ms']:.3f}")
    tp = report["throughput"]
    t2 = Table(title=f"throughput: {tp['clients']} concurrent clients for {tp['seconds']:.1f} s", title_justify="left")
    t2.add_column("figure")
    t2.add_column("value", justify="right")
    load = tp["latency_under_load"]
    t2.add_row("requests (1 image each)", f"{tp['requests']} ({tp['failures']} failed)")
    t2.add_row("throughput", f"{tp['requests_per_s']:.1f} images/s")
    if load.get("count"):
        t2.add_row("latency under load p50 / p90 / p99", f"{load['p50_ms']:.2f} / {load['p90_ms']:.2f} / {load['p99_ms']:.2f} ms")
    mb = tp["server"]["mean_batch"]
    t2.add_row("Triton mean batch / queue per request", f"{mb:.2f} / {tp['server']['queue_ms_per_request']:.3f} ms"
               if mb else "-")
    b = report["bytes"]
    t3 = Table(title=f"bytes on the wire per request ({b['protocol']}, counted at the socket, {b['requests']} requests)",
               title_justify="left")
    t3.add_column("direction")
    t3.add_column("measured", justify="right")
    t3.add_column("payload", justify="right")
    t3.add_column("computed today", justify="right")
    m, p, c = b["measured_per_request"], b["payload_per_request"], b["computed_today"]
    t3.add_row("edge -> cloud", f"{m['sent']:.0f} B", f"{p['sent']} B",
               f"{c['int8_per_image']} B (+{c['scales_once_per_session']} B once)")
    t3.add_row("cloud -> edge", f"{m['received']:.0f} B", f"{p['received']} B", "-")
    s = b["connection_setup_and_first_request"]
    t3.add_row("connection set-up + first request", f"{s['sent']} B / {s['received']} B", "", "")
    return [t1, t2, t3]


def render_markdown(report: dict) -> str:
    lat, tp, b = report["latency"]["split"], report["throughput"], report["bytes"]
    lines = [f"# sift-deploy bench --server {report['server']}", "",
             "| part | p50 ms | p90 ms | p99 ms |", "|---|---:|---:|---:|"]
    for key in ("edge", "network_and_queue", "queue", "cloud_compute", "total"):
        s = lat[key]
        lines.append(f"| {key} | {s['p50_ms']:.3f} | {s['p90_ms']:.3f} | {s['p99_ms']:.3f} |")
    lines += ["", f"Throughput with {tp['clients']} clients: {tp['requests_per_s']:.1f} images/s "
              f"({tp['requests']} requests, {tp['failures']} failed).", "",
              f"Bytes per request ({b['protocol']}): {b['measured_per_request']['sent']:.0f} sent / "
              f"{b['measured_per_request']['received']:.0f} received at the socket; payload "
              f"{b['payload_per_request']['sent']} / {b['payload_per_request']['received']}.", ""]
    return "\n".join(lines)


def bench_server_command(bundle: Path, server: str, clients: int, iterations: int, warmup: int, threads: int | None,
                         json_file: Path | None, markdown_file: Path | None, json_out: bool = False) -> None:
    """The CLI side of `bench --server` (kept here so cli.py only dispatches)."""
    import json

    import typer
    from rich.markup import escape

    from ..bench import write_text
    from ..cli import console, err_console, fail
    from ..fileio import check_writable
    from ..stage_progress import StageProgress

    with StageProgress("bench") as progress:
        try:
            for path in (json_file, markdown_file):  # before the measurement, not after
                if path is not None:
                    check_writable(path, force=True)
            report = run_e2e_bench(bundle, server, iterations=iterations, warmup=warmup, clients=clients,
                                   threads=threads, on_progress=progress)
        except SiftError as exc:
            fail(str(exc))
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        for table in render_tables(report):
            console.print(table)
    for path, text in ((json_file, json.dumps(report, indent=2) + "\n"), (markdown_file, render_markdown(report))):
        if path is not None:
            write_text(path, text)
            err_console.print(f"wrote {escape(str(path))}", highlight=False)
    if not report["passed"]:
        for failure in report["failures"]:
            err_console.print(f"[bold red]bench failed:[/] {escape(failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
