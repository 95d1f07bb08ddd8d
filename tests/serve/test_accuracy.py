"""Accuracy is unchanged by the serving path: the 10,000 Fashion-MNIST test images through
edge artifact -> uint8 wire -> Triton -> logits score exactly the bundle's own parity figure
(manifest parity.wire_int8.accuracy, measured at export with ONNX Runtime on the same split)."""

from __future__ import annotations

import numpy as np
import pytest

from sift_deploy.bundle import read_manifest
from sift_deploy.data.sources import load_dataset
from sift_deploy.data.splits import make_splits
from sift_deploy.export import export_bundle
from sift_deploy.serve.client import infer_images

from .conftest import start_server


@pytest.mark.slow
def test_accuracy_through_triton_on_the_test_split_equals_the_parity_figure(needs_triton, fashion_mnist_dir, tmp_path):
    bundle = tmp_path / "x86-test-split"
    export_bundle(None, "x86", output=bundle, data_dir=None, parity_on_test_split=True, parity_images="all")
    manifest = read_manifest(bundle)
    assert manifest["parity"]["images"] == 10000
    splits = make_splits(load_dataset(fashion_mnist_dir))
    images = tmp_path / "test.npz"
    np.savez(images, images=splits.test.images, labels=splits.test.labels)
    server = start_server(bundle)
    try:
        result = infer_images(bundle, images, server.client_url("grpc"), batch=64)
    finally:
        server.stop()
    print(f"\naccuracy via Triton {result['accuracy']:.4%} on {result['images']} images in {result['seconds']:.1f} s; "
          f"bundle parity (int8 wire) {manifest['parity']['wire_int8']['accuracy']:.4%}")
    assert result["images"] == 10000
    assert result["accuracy"] == manifest["parity"]["wire_int8"]["accuracy"]
