"""The features on the wire: bytes per image, compressed sizes of the real features, int8's top-1 cost."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from sift_deploy import bench, wire
from sift_deploy.backends import open_runner
from sift_deploy.bundle import read_manifest
from sift_deploy.data.preprocess import model_input


def test_feature_bytes_are_numel_times_dtype_size(x86_run):
    feats = x86_run[1]["features"]
    assert feats["shape"] == [12, 8, 8] and feats["numel"] == 768
    assert feats["bytes_per_image"] == {"fp32": 768 * 4, "fp16": 768 * 2, "int8": 768}
    assert feats["int8_wire"]["scales_bytes_once"] == 12 * 4
    assert feats["compression"]["images"] == 256


def test_compressed_size_is_measured_on_the_real_features(x86_run, x86_bundle):
    feats = x86_run[1]["features"]
    zl = feats["compression"]["codecs"]["zlib"]
    assert zl["round_trip"] is True
    for dtype, raw in feats["bytes_per_image"].items():
        assert 0 < zl["per_image"][dtype]["mean_bytes"] < raw  # differs from raw (the features are sparse)
    # Recompute from the artifact's own features of the reference images: the same numbers come out.
    manifest = read_manifest(x86_bundle)
    with np.load(x86_bundle / bench.PARITY_REFERENCE) as ref:
        images = ref["images"]
    norm = manifest["input"]["normalization"]
    inputs = model_input(images, manifest["model"]["input_size"], norm["mean"], norm["std"])
    with open_runner(x86_bundle, manifest, threads=1) as r:
        z = r.infer(inputs)
    q = wire.quantize(z, manifest["features"]["wire_int8"])
    messages = [row.tobytes() for row in q]
    assert all(len(m) == 768 for m in messages)
    packed = [zlib.compress(m, 9) for m in messages]
    assert all(zlib.decompress(p) == m for p, m in zip(packed, messages))
    assert zl["per_image"]["int8"]["mean_bytes"] == pytest.approx(np.mean([len(p) for p in packed]))
    # ...and they are not the size of a trivial message: all-zero features compress to a few bytes.
    assert zl["per_image"]["int8"]["mean_bytes"] > 5 * len(zlib.compress(bytes(768), 9))
    sizes = bench.feature_sizes(z, manifest["features"]["wire_int8"])
    assert sizes["compression"]["codecs"]["zlib"]["per_image"] == zl["per_image"]


def test_wire_accuracy_goes_through_the_float_cloud(x86_run):
    acc = x86_run[1]["features"]["wire_accuracy"]
    assert acc["cloud"].startswith("float cloud.onnx") and acc["images"] == 256
    assert 0.9 <= acc["top1_agreement_int8_vs_fp32_wire"] <= 1.0
    assert acc["accuracy_cost_points"] == pytest.approx((acc["accuracy_fp32_wire"] - acc["accuracy_int8_wire"]) * 100)
