"""Runs an ONNX file (the x86 edge, or any bundle's float cloud) in ONNX Runtime on the CPU
(numpy + onnxruntime only, no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import SiftError
from ..base import Artifacts, Loader, Runner

INPUT_NAME = "input"
INSTALL_HINT = "pip install './sift-deploy[x86]' (onnxruntime)"


def session_options(threads: int = 1, optimize: bool = True):
    """The session settings every measurement and the runner use: CPU, `threads` intra-op threads,
    sequential execution, all graph optimisations (NCHWc for float convs, NHWC for int8 ones), or
    none (`optimize=False`: every tensor of the graph as written, for calibration)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                   else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    so.log_severity_level = 3
    return so


def available() -> tuple[bool, str]:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False, f"onnxruntime is not installed; {INSTALL_HINT}"
    return True, "onnxruntime"


class OnnxRuntimeRunner(Runner):
    """`onnxruntime.InferenceSession` on CPUExecutionProvider; float32 in, float32 out."""

    name = "onnxruntime"
    label = "ONNX Runtime CPU"

    def __init__(self, loader: Loader, threads: int = 1, details: dict | None = None, optimize: bool = True):
        super().__init__(loader, threads, details)
        self.optimize = optimize

    def _activate(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise SiftError(f"onnxruntime is not installed; {INSTALL_HINT}") from exc
        path = self.loader.path()
        model = str(path) if path is not None else self.loader.read_bytes()
        try:
            self.session = ort.InferenceSession(model, session_options(self.threads, self.optimize), providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for corrupt or unsupported files
            raise SiftError(f"ONNX Runtime cannot load {path or self.loader.name}: {str(exc).splitlines()[0]}") from exc
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.input_shape = tuple(inp.shape[1:])

    def _infer(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        fixed = all(isinstance(d, int) for d in self.input_shape)
        if x.ndim != 1 + len(self.input_shape) or (fixed and tuple(x.shape[1:]) != self.input_shape):
            raise SiftError(f"input of shape {x.shape} does not fit the model's (N, {', '.join(map(str, self.input_shape))})")
        x = np.ascontiguousarray(x, dtype=np.float32)
        z = self.session.run([self.output_name], {self.input_name: x})[0]
        return np.asarray(z, dtype=np.float32)

    def infer_all(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every graph output by name (models with several outputs, e.g. calibration graphs)."""
        if not self.is_active:
            self.infer(x)  # raises the not-active error
        x = np.ascontiguousarray(x, dtype=np.float32)
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {self.input_name: x})))

    def raw_call(self):
        sess, name, out = self.session, self.input_name, self.output_name
        return (lambda x: sess.run([out], {name: x})), (lambda x: np.ascontiguousarray(x, dtype=np.float32))

    def profile(self, x: np.ndarray, runs: int = 50, warmup: int = 10) -> dict:
        """ORT's own profiler (SessionOptions.enable_profiling) on a separate session with this runner's
        settings: `_kernel_time` events of category Node, from the timed runs only, mean per run."""
        import json
        import tempfile

        import onnxruntime as ort

        from ..profiling import op_profile

        x = np.ascontiguousarray(x, dtype=np.float32)
        path = self.loader.path()
        model = str(path) if path is not None else self.loader.read_bytes()
        with tempfile.TemporaryDirectory(prefix="sift-ort-profile-") as tmp:
            so = session_options(self.threads, self.optimize)
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / "ort")
            try:
                session = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
            except Exception as exc:  # noqa: BLE001 - ORT's own exception types
                raise SiftError(f"ONNX Runtime cannot load {path or self.loader.name}: {str(exc).splitlines()[0]}") from exc
            feed = {session.get_inputs()[0].name: x}
            outputs = [session.get_outputs()[0].name]
            for _ in range(warmup + runs):
                session.run(outputs, feed)
            events = json.loads(Path(session.end_profiling()).read_text())
        model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                            key=lambda e: e["ts"])
        timed = model_runs[-runs:]
        start = timed[0]["ts"] if timed else 0
        per_node: dict[str, dict] = {}
        for e in events:
            if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time") or e["ts"] < start:
                continue
            node = e["name"][: -len("_kernel_time")]
            row = per_node.setdefault(node, {"node": node, "op_type": e.get("args", {}).get("op_name", "?"), "durs": []})
            row["durs"].append(float(e["dur"]))
        # the median per node: a run that another process preempted inflates a mean by one node's worth
        rows = [{"node": r["node"], "op_type": r["op_type"], "us": float(np.median(r["durs"])) * len(r["durs"]) / max(1, len(timed))}
                for r in per_node.values()]
        run_us = float(np.mean([e["dur"] for e in timed])) if timed else None
        return op_profile(rows, method="onnxruntime profiler (SessionOptions.enable_profiling): Node events "
                          "'<node>_kernel_time', median per run over the timed runs; the optimised graph ORT runs "
                          "(fused nodes, NCHWc reorders)", runs=len(timed), batch=len(x), run_us=run_us,
                          notes=["profiling adds time per node: compare shares, not absolute times, with bench's p50"])

    def _deactivate(self) -> None:
        self.session = None

    def versions(self) -> dict[str, str]:
        import onnxruntime as ort

        return {"onnxruntime": ort.__version__, "numpy": np.__version__}


def create_runner(artifacts: Artifacts, edge_file: str, details: dict, threads: int = 1,
                  runtime: str | None = None) -> Runner:
    """The registry's entry point; onnxruntime needs no stand-in."""
    return OnnxRuntimeRunner(artifacts.loader(edge_file), threads, details)


def runner_for(loader: Loader, threads: int = 1, optimize: bool = True) -> OnnxRuntimeRunner:
    """An ORT runner over any ONNX artifact (a file, or bytes built in memory)."""
    return OnnxRuntimeRunner(loader, threads, optimize=optimize)
