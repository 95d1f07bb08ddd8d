"""The features z as they travel to the cloud: bytes per image as fp32, fp16 and int8 (per-channel
scales sent once per session), their size after lossless compression of each image's message
(zstd where importable, else zlib and lzma from the standard library; every message is round-tripped),
and the top-1 cost of int8 on the wire through the bundle's float cloud."""

from __future__ import annotations

import lzma
import zlib
from typing import Callable

import numpy as np

from .. import wire


def lossless_codecs() -> list[tuple[str, str, Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    """(name, setting, compress, decompress): zstd where importable, then zlib and lzma (stdlib)."""
    out = []
    try:
        import zstandard

        cctx, dctx = zstandard.ZstdCompressor(level=19), zstandard.ZstdDecompressor()
        out.append(("zstd", "level 19 (zstandard)", cctx.compress, dctx.decompress))
    except ImportError:
        try:
            from compression import zstd  # Python >= 3.14

            out.append(("zstd", "level 19 (compression.zstd)", lambda b: zstd.compress(b, level=19), zstd.decompress))
        except ImportError:
            pass
    out.append(("zlib", "level 9", lambda b: zlib.compress(b, 9), zlib.decompress))
    # A 64 KiB dictionary: messages are a few KiB, and preset 9's 64 MiB dictionary costs ~0.2 s per call.
    # (preset 9e compresses these messages no smaller than preset 6 and takes 3x longer)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 6, "dict_size": 1 << 16}]
    out.append(("lzma", "raw LZMA2, preset 6, 64 KiB dictionary",
                lambda b: lzma.compress(b, format=lzma.FORMAT_RAW, filters=filters),
                lambda b: lzma.decompress(b, format=lzma.FORMAT_RAW, filters=filters)))
    return out


def wire_messages(z: np.ndarray, wire_params: dict) -> dict[str, list[bytes]]:
    """Each image's features as the bytes that would be sent, per wire dtype."""
    q = wire.quantize(z, wire_params)
    return {
        "fp32": [row.tobytes() for row in np.ascontiguousarray(z, np.float32)],
        "fp16": [row.tobytes() for row in np.ascontiguousarray(z.astype(np.float16))],
        "int8": [row.tobytes() for row in np.ascontiguousarray(q)],
    }


def feature_sizes(z: np.ndarray, wire_params: dict) -> dict:
    """Bytes per image of z on the wire, raw and compressed (measured on these features, round-tripped)."""
    numel = int(np.prod(z.shape[1:]))
    raw = {"fp32": numel * 4, "fp16": numel * 2, "int8": numel * 1}
    messages = wire_messages(z, wire_params)
    for dtype, msgs in messages.items():
        assert all(len(m) == raw[dtype] for m in msgs), "wire message size differs from numel x dtype size"
    measured = {}
    for name, setting, compress, decompress in lossless_codecs():
        per_dtype = {}
        for dtype, msgs in messages.items():
            sizes = []
            for m in msgs:
                packed = compress(m)
                if decompress(packed) != m:
                    raise RuntimeError(f"{name} did not round-trip a {dtype} feature message")  # a bug, not user error
                sizes.append(len(packed))
            sizes = np.asarray(sizes)
            per_dtype[dtype] = {"mean_bytes": float(sizes.mean()), "p50_bytes": float(np.median(sizes)),
                                "max_bytes": int(sizes.max()), "ratio_to_raw": float(sizes.mean() / raw[dtype])}
        measured[name] = {"setting": setting, "per_image": per_dtype, "round_trip": True}
    headline = "zstd" if "zstd" in measured else "zlib"
    scales = len(wire_params["scales"])
    return {
        "shape": [int(s) for s in z.shape[1:]],
        "numel": numel,
        "bytes_per_image": raw,
        "int8_wire": {"dtype": wire_params["dtype"], "scheme": wire_params["scheme"], "channels": scales,
                      "scales_bytes_once": scales * 4,
                      "note": "per-channel fp32 scales are sent once per session, not per image (zero-points are 0)"},
        "compression": {"codec": headline, "images": int(len(z)), "measured_on": "the artifact's features of the "
                        "bundle's reference images, each image's message compressed on its own", "codecs": measured},
    }


def wire_accuracy(cloud, z: np.ndarray, wire_params: dict, pred_ref: np.ndarray, labels: np.ndarray | None,
                  batch: int = 256) -> dict:
    """Top-1 through the float cloud: deployed z sent as fp32 vs sent as int8 (per-channel) on the wire."""
    def run(v):
        return np.concatenate([cloud.infer(v[i:i + batch]) for i in range(0, len(v), batch)]).argmax(1)

    pred_float = run(z)
    pred_int8 = run(wire.roundtrip(z, wire_params))
    out = {
        "images": int(len(z)),
        "top1_agreement_int8_vs_fp32_wire": float((pred_int8 == pred_float).mean()),
        "top1_agreement_int8_wire_vs_float_model": float((pred_int8 == pred_ref).mean()),
        "top1_agreement_fp32_wire_vs_float_model": float((pred_float == pred_ref).mean()),
    }
    if labels is not None:
        out["accuracy_fp32_wire"] = float((pred_float == labels).mean())
        out["accuracy_int8_wire"] = float((pred_int8 == labels).mean())
        out["accuracy_cost_points"] = round((out["accuracy_fp32_wire"] - out["accuracy_int8_wire"]) * 100, 4)
    return out
