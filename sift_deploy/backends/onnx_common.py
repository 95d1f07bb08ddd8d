"""What the ONNX-based backends (onnxruntime, tensorrt) share: torch -> single-file ONNX, quiet
ORT quantization tooling, and the float-parity numbers of an ONNX file against its module (both
sides run through runners; cosine from `parity.cosine_per_image`, the one implementation)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from .base import BytesLoader, FileLoader, artifact_tensor
from .onnxruntime.runner import runner_for
from .torch.runner import torch_outputs

INPUT_NAME = "input"
OUTPUT_NAME = "z"
DEFAULT_OPSET = 17


def export_onnx(edge, input_shape: tuple[int, int, int], path: Path, opset: int = DEFAULT_OPSET,
                rewrite: bool = True, check_inputs: np.ndarray | None = None) -> dict:
    """Write `edge` as one ONNX file (no external data) with a dynamic batch axis; return details.

    With `rewrite`, the export form is checked against the module on `check_inputs` (or a zero
    batch); if it disagrees by more than 1e-5 relative, the faithful graph is exported instead
    and the details say so.
    """
    import onnx
    import torch

    from .onnxruntime.rewrite import export_form

    edge = edge.eval()
    details: dict = {"exporter": "torch.onnx.export (TorchScript, dynamo=False)", "opset": int(opset),
                     "torch": torch.__version__.split("+")[0], "onnx": onnx.__version__,
                     "input": INPUT_NAME, "output": OUTPUT_NAME, "dynamic_axes": {"input": "N", "z": "N"},
                     "batchnorm": "folded into Conv"}
    module = edge
    if rewrite:
        candidate, replaced = export_form(edge, input_shape)
        probe = torch.from_numpy(check_inputs[:16] if check_inputs is not None else np.zeros((2, *input_shape), np.float32))
        with torch.no_grad():
            ref, got = edge(probe), candidate(probe)
        err = float((ref - got).abs().max())
        scale = float(ref.abs().max()) or 1.0
        if err <= 1e-5 * scale:
            module = candidate
            details["rewrite"] = {"blocks": replaced, "max_abs_vs_module": err}
        else:
            details["rewrite"] = {"blocks": [], "skipped": f"export form differs by {err:.3g} (max |z| {scale:.3g})"}
    example = torch.zeros(1, *input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=int(opset),
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
                          dynamic_axes={INPUT_NAME: {0: "N"}, OUTPUT_NAME: {0: "N"}})
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    _unshare_initializers(model)
    _plain_names(model)
    model = onnx.shape_inference.infer_shapes(model)
    onnx.save(model, str(path))
    details["nodes"] = len(model.graph.node)
    return details


def _unshare_initializers(model) -> None:
    """Give every Conv/MatMul/Gemm its own weight and bias initializers.

    The exporter merges initializers with equal values (e.g. two all-zero folded biases); ORT's
    quantizer then quantizes the shared one once and leaves the other conv without its bias.
    """
    inits = {t.name: t for t in model.graph.initializer}
    seen: set[str] = set()
    for node in model.graph.node:
        if node.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        for i, name in enumerate(node.input):
            if name not in inits:
                continue
            if name in seen:
                copy = type(inits[name])()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name.strip('/').replace('/', '_')}"
                model.graph.initializer.append(copy)
                node.input[i] = copy.name
            seen.add(name)


def _plain_names(model) -> None:
    """Rename tensors like `onnx::Conv_147` (no ':' in names: TensorRT calibration caches are `name: hex`)."""
    graph = model.graph
    names = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {o for n in graph.node for o in n.output}
    rename = {}
    for name in sorted(names):
        if ":" in name:
            new = base = name.replace("::", "_").replace(":", "_")
            k = 1
            while new in names or new in rename.values():
                new, k = f"{base}_{k}", k + 1
            rename[name] = new
    if not rename:
        return
    for t in graph.initializer:
        t.name = rename.get(t.name, t.name)
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        vi.name = rename.get(vi.name, vi.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = rename.get(name, name)




class quiet:
    """ORT's calibrators print progress to stdout; keep the CLI's output clean."""

    def __enter__(self):
        import contextlib
        import io

        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self._disabled = logging.root.manager.disable
        logging.disable(logging.WARNING)  # ORT's quantizer logs advice on the root logger
        return self

    def __exit__(self, *exc):
        logging.disable(self._disabled)
        self._stack.close()


def onnx_io(path: Path) -> dict:
    """The graph's own input and output tensors (name, element type, shape): for a Q/DQ model they
    stay float32, the quantization lives inside the graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(f"{Path(path).name} has {len(graph.input)} inputs and {len(graph.output)} outputs; expected 1 and 1")

    def tensor(value) -> dict:
        typed = value.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(typed.elem_type)).name
        shape = [d.dim_value if d.HasField("dim_value") else None for d in typed.shape.dim]
        return artifact_tensor(value.name, dtype, shape)

    return {"input": tensor(graph.input[0]), "output": tensor(graph.output[0])}


def onnx_outputs(model: Path | bytes, data: np.ndarray, batch: int = 64) -> np.ndarray:
    """The ONNX model's output on `data` (float32 NCHW), through the ONNX Runtime runner."""
    loader = BytesLoader(model) if isinstance(model, (bytes, bytearray)) else FileLoader(Path(model))
    with runner_for(loader) as runner:
        return np.concatenate([runner.infer(data[i:i + batch]) for i in range(0, len(data), batch)])


def float_parity_numbers(ref: np.ndarray, got: np.ndarray) -> dict:
    from ..parity import cosine_per_image

    cos = cosine_per_image(ref, got)
    return {"cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6),
            "max_abs": float(np.abs(ref.astype(np.float64) - got).max()), "max_abs_z": float(np.abs(ref).max()),
            "samples": int(len(ref))}


def float_parity(edge, model: Path | bytes, data: np.ndarray) -> dict:
    """Cosine and max-abs of the ONNX model's z against the float module on `data`."""
    return float_parity_numbers(torch_outputs(edge, data), onnx_outputs(model, data))


GUARD_SAMPLES = 128  # images the parity guard compares z on


def parity_guard(src: Path, dst: Path, candidates: list[str], write, data: np.ndarray, min_cosine: float,
                 work: Path, samples: int = GUARD_SAMPLES) -> tuple[list[str], dict]:
    """Quantize `candidates` into `dst`; while z's mean cosine to the float z on `data` is below
    `min_cosine`, keep the conv whose quantization alone costs the most cosine in float.

    Layer-wise sensitivity is the usual mixed-precision recipe; here it catches e.g. a conv whose
    output is the sparse, heavy-tailed z itself, where one per-tensor scale flushes most values to 0.
    `write(names, path)` writes a model with exactly the Conv nodes `names` quantized.
    """
    data = data[:samples]
    ref = onnx_outputs(src, data)
    names = list(candidates)

    def cosine(path: Path) -> float:
        return float_parity_numbers(ref, onnx_outputs(path, data))["cosine_mean"]

    write(names, dst)
    first = cos = cosine(dst)
    report: dict = {"min_cosine": min_cosine, "images": int(len(data)), "cosine_all_candidates": first, "kept_float": []}
    if cos >= min_cosine:
        report["cosine"] = cos
        return names, report
    alone = {}
    probe = work / "probe.onnx"
    for name in names:
        write([name], probe)
        alone[name] = cosine(probe)
    for name in sorted(names, key=lambda n: alone[n]):
        if cos >= min_cosine or len(names) == 1:
            break
        names.remove(name)
        write(names, dst)
        cos = cosine(dst)
        report["kept_float"].append({"node": name, "cosine_when_only_it_is_int8": alone[name], "cosine_after": cos})
    report["cosine"] = cos
    if cos < min_cosine:
        report["warning"] = f"cosine {cos:.4f} stays below {min_cosine} with only {names} int8"
    return names, report
