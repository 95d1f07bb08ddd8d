"""TensorRT INT8 calibration cache: the text file `trtexec --calib=` and IInt8Calibrator read.

Format (TensorRT's own writer; NVIDIA TAO exporters; NVIDIA/TensorRT#2036):

    TRT-<version>-EntropyCalibration2
    <tensor name>: <IEEE-754 float32 bits of scale, lower-case hex>
    ...

- `<version>` is NV_TENSORRT_VERSION: major*1000 + minor*100 + patch for TensorRT 8.x (8.5.2 -> 8502)
  and major*10000 + minor*100 + patch from 10.0 on (10.3.0 -> 100300).
- scale = amax / 127 (symmetric int8); 0.0078125 is written `3c000000`.
- One line per activation tensor of the network (its input and every layer output), named as in the
  ONNX file, which is how TensorRT's ONNX parser names them.
- TensorRT silently ignores a cache whose header does not match its version or the calibrator's
  algorithm. trtexec's calibrator is an IInt8EntropyCalibrator2, so the header says
  `EntropyCalibration2` whatever method computed the ranges (minmax, percentile or entropy); the
  method is recorded in the bundle manifest instead.

Pure Python + numpy: reading, writing and the amax searches run anywhere.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import SiftError

ALGORITHMS = ("EntropyCalibration2", "EntropyCalibration", "MinMaxCalibration", "LegacyCalibration")
DEFAULT_ALGORITHM = "EntropyCalibration2"
HEADER_RE = re.compile(r"^TRT-(\d+)-(\w+)$")


def parse_trt_version(version: str) -> tuple[int, int, int]:
    """"8.5.2", "8.6.2.3", "10.3" -> (major, minor, patch)."""
    parts = str(version).strip().split(".")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
        raise SiftError(f"TensorRT version {version!r} is not of the form MAJOR.MINOR.PATCH (e.g. 8.5.2 or 10.3.0)")
    major, minor, patch = (int(p) for p in (parts + ["0"])[:3])
    return major, minor, patch


def trt_version_code(version: str) -> int:
    """NV_TENSORRT_VERSION as TensorRT writes it into cache headers: 8.5.2 -> 8502, 10.3.0 -> 100300."""
    major, minor, patch = parse_trt_version(version)
    if major >= 10:
        return major * 10000 + minor * 100 + patch
    return major * 1000 + minor * 100 + patch


def header(version: str, algorithm: str = DEFAULT_ALGORITHM) -> str:
    if algorithm not in ALGORITHMS:
        raise SiftError(f"calibration algorithm {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
    return f"TRT-{trt_version_code(version)}-{algorithm}"


def scale_to_hex(scale: float) -> str:
    """float32 bits of `scale` as TensorRT writes them: 0.0078125 -> '3c000000'."""
    return format(struct.unpack(">I", struct.pack(">f", float(scale)))[0], "x")


def hex_to_scale(text: str) -> float:
    value = int(text, 16)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"{text!r} is not 32 bits")
    return struct.unpack(">f", struct.pack(">I", value))[0]


def amax_to_scale(amax: float) -> float:
    """scale = amax / 127 rounded to float32, as TensorRT stores it."""
    return float(np.float32(np.float32(amax) / np.float32(127.0)))


@dataclass
class CalibrationCache:
    version_code: int
    algorithm: str
    scales: dict[str, float]  # tensor name -> scale (amax / 127)

    def amax(self, name: str) -> float:
        return self.scales[name] * 127.0


def format_cache(amax: dict[str, float], version: str, algorithm: str = DEFAULT_ALGORITHM) -> str:
    lines = [header(version, algorithm)]
    for name, value in amax.items():
        if ":" in name or "\n" in name:
            raise SiftError(f"tensor name {name!r} cannot be written to a TensorRT calibration cache")
        value = float(value)
        if not np.isfinite(value) or value < 0:
            raise SiftError(f"tensor {name!r} has range {value}; calibration produced a non-finite range")
        lines.append(f"{name}: {scale_to_hex(amax_to_scale(value))}")
    return "\n".join(lines) + "\n"


def write_cache(path: Path, amax: dict[str, float], version: str, algorithm: str = DEFAULT_ALGORITHM) -> Path:
    Path(path).write_text(format_cache(amax, version, algorithm))
    return Path(path)


def parse_cache(text: str) -> CalibrationCache:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SiftError("calibration cache is empty")
    match = HEADER_RE.match(lines[0])
    if not match:
        raise SiftError(f"calibration cache header {lines[0]!r} is not of the form TRT-<version>-<Algorithm>")
    scales: dict[str, float] = {}
    for number, line in enumerate(lines[1:], start=2):
        name, sep, value = line.rpartition(": ")
        if not sep or not name:
            raise SiftError(f"calibration cache line {number} ({line!r}) is not '<tensor>: <hex>'")
        try:
            scales[name] = hex_to_scale(value)
        except ValueError as exc:
            raise SiftError(f"calibration cache line {number}: {value!r} is not a 32-bit hex float") from exc
    return CalibrationCache(int(match.group(1)), match.group(2), scales)


def read_cache(path: Path) -> CalibrationCache:
    return parse_cache(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# amax from data: TensorRT semantics (symmetric, on |x|)

HIST_BINS = 2048
QUANT_BINS = 128  # int8: 127 positive levels + 0
PERCENTILE = 99.999


def amax_from_histogram(hist: np.ndarray, edges: np.ndarray, method: str, percentile: float = PERCENTILE) -> float:
    """amax from a histogram of |x| over [0, max|x|] (`edges` of length len(hist) + 1)."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    if total == 0 or edges[-1] <= 0:
        return float(edges[-1])
    if method == "minmax":
        nonzero = np.nonzero(hist)[0]
        return float(edges[nonzero[-1] + 1])
    if method == "percentile":
        cdf = np.cumsum(hist) / total
        idx = int(np.searchsorted(cdf, percentile / 100.0))
        return float(edges[min(idx + 1, len(hist))])
    if method == "entropy":
        return float(edges[_entropy_bin(hist)])
    raise SiftError(f"unknown calibration method {method!r}")


def _entropy_bin(hist: np.ndarray, quant_bins: int = QUANT_BINS) -> int:
    """TensorRT's entropy calibration: the clip bin i (>= 128) minimising KL(P_i || Q_i).

    P_i is the histogram's first i bins with the clipped tail added to the last one; Q_i merges
    those i bins into 128 levels and spreads each level's count evenly over its non-empty bins.
    As pytorch-quantization's `_compute_amax_entropy` (NVIDIA's reference): the zero bin takes
    the next bin's count (ReLU outputs would otherwise dominate it), and ties go to the larger i.
    """
    hist = np.asarray(hist, dtype=np.float64).copy()
    n = len(hist)
    if n <= quant_bins:
        return n
    hist[0] = hist[1]
    tail = np.concatenate((np.cumsum(hist[::-1])[::-1], [0.0]))  # tail[i] = sum(hist[i:])
    best_i, best_kl = n, np.inf
    for i in range(quant_bins, n + 1):
        head = hist[:i]
        nonzero = head != 0
        level = (np.arange(i) * quant_bins) // i  # which of the 128 levels source bin j falls in
        merged = np.bincount(level, weights=head, minlength=quant_bins)
        count = np.bincount(level, weights=nonzero.astype(np.float64), minlength=quant_bins)
        q = np.where(nonzero, (merged / np.maximum(count, 1.0))[level], 0.0)
        p = head.copy()
        p[-1] += tail[i]
        kl = _kl(p, q)
        if kl <= best_kl:
            best_kl, best_i = kl, i
    return best_i


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """KL(p || q) of unnormalised counts (scipy.stats.entropy semantics: inf where q = 0 < p)."""
    p_sum, q_sum = p.sum(), q.sum()
    if p_sum == 0 or q_sum == 0:
        return np.inf
    mask = p > 0
    if np.any(q[mask] == 0):
        return np.inf
    p, q = p[mask] / p_sum, q[mask] / q_sum
    return float(np.sum(p * np.log(p / q)))
