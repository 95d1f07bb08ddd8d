"""Fixtures for the Triton tests: one x86 bundle per session (shipped reference checkpoint, parity on
the committed hold-out images), one real tritonserver on free loopback ports, and a load driver.

Servers bind 127.0.0.1 only, on ports found by binding port 0, and every server a fixture starts is
stopped in its finalizer (SIGTERM, then SIGKILL of its own process group: only what we started).
"""

from __future__ import annotations

import importlib.util
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sift_deploy import wire
from sift_deploy.bundle import PARITY_REFERENCE, read_manifest
from sift_deploy.backends.onnx_common import onnx_outputs
from sift_deploy.errors import SiftError

HAS_TRITONCLIENT = importlib.util.find_spec("tritonclient") is not None
TRITONCLIENT_MISSING = "tritonclient is not installed (pip install 'sift-deploy[serve]')"


def tritonserver_missing() -> str | None:
    from sift_deploy.serve.server import find_tritonserver

    try:
        find_tritonserver()
    except SiftError as exc:
        return f"tritonserver binary not installed ({exc})"
    return None


def free_ports() -> dict[str, int]:
    from sift_deploy.serve.server import free_port

    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    return ports


@pytest.fixture(scope="session")
def serve_bundle(reference_bundle) -> Path:
    return reference_bundle("x86")  # read only: the session's x86 int8 bundle


@pytest.fixture(scope="session")
def needs_triton():
    if not HAS_TRITONCLIENT:
        pytest.skip(TRITONCLIENT_MISSING)
    reason = tritonserver_missing()
    if reason:
        pytest.skip(reason)


def start_server(bundle: Path, ports: dict | None = None):
    from sift_deploy.serve.server import TritonServer, bundle_repository

    repository, _ = bundle_repository(bundle)
    return TritonServer(repository, ports=ports or free_ports()).start()


@pytest.fixture(scope="session")
def triton(needs_triton, serve_bundle, request):
    """A tritonserver serving the session bundle's python variant (stopped at the end of the session)."""
    server = start_server(serve_bundle)
    request.addfinalizer(server.stop)
    return server


@dataclass
class Reference:
    """The bundle's stored reference images, their edge features and the local ONNX Runtime answers."""

    inputs: np.ndarray
    labels: np.ndarray
    images: np.ndarray
    z: np.ndarray
    logits: np.ndarray  # local: edge artifact -> wire round trip -> cloud.onnx in ONNX Runtime
    manifest: dict = field(default_factory=dict)


@pytest.fixture(scope="session")
def reference(serve_bundle) -> Reference:
    from sift_deploy.backends import open_runner
    from sift_deploy.data.preprocess import model_input

    manifest = read_manifest(serve_bundle)
    with np.load(serve_bundle / PARITY_REFERENCE) as ref:
        images, labels = ref["images"], ref["labels"]
    norm = manifest["input"]["normalization"]
    inputs = model_input(images, manifest["model"]["input_size"], norm["mean"], norm["std"])
    with open_runner(serve_bundle, manifest) as runner:
        z = runner.infer(inputs)
    logits = onnx_outputs(serve_bundle / "cloud.onnx", wire.roundtrip(z, manifest["features"]["wire_int8"]))
    return Reference(inputs, labels, images, z, logits, manifest)


@dataclass
class LoadResult:
    sent: int
    answered: int
    wrong: int
    failures: list[str]
    seconds: float
    hung_threads: int

    @property
    def lost(self) -> int:
        return self.sent - self.answered - len(self.failures)


def run_load(url: str, ref: Reference, clients: int, seconds: float, timeout_s: float = 10.0,
             stop_on_failure: bool = False, on_started=None) -> LoadResult:
    """`clients` threads, one connection each, send single images' wire features back to back for
    `seconds`; every answer is compared with the local ONNX Runtime logits of that image."""
    from sift_deploy.serve.client import ServerError, WireClient

    serving, params = ref.manifest["serving"], ref.manifest["features"]["wire_int8"]
    counts = [[0, 0, 0] for _ in range(clients)]  # sent, answered, wrong
    failures: list[list[str]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + seconds
    barrier = threading.Barrier(clients + 1)

    def work(k: int) -> None:
        client = WireClient(url, serving, params, timeout_s).connect()
        barrier.wait()
        i = k
        while time.monotonic() < deadline:
            idx = i % len(ref.z)
            counts[k][0] += 1
            try:
                logits = client.send(ref.z[idx:idx + 1])
                counts[k][1] += 1
                if logits.shape != (1, ref.logits.shape[1]) or not np.allclose(logits[0], ref.logits[idx], atol=1e-4):
                    counts[k][2] += 1
            except ServerError as exc:
                failures[k].append(str(exc))
                if stop_on_failure:
                    break
            i += clients
        client.close()

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    started = time.monotonic()
    barrier.wait()
    if on_started is not None:
        on_started()
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0) + timeout_s + 10)
    return LoadResult(sent=sum(c[0] for c in counts), answered=sum(c[1] for c in counts),
                      wrong=sum(c[2] for c in counts), failures=[f for x in failures for f in x],
                      seconds=time.monotonic() - started, hung_threads=sum(t.is_alive() for t in threads))
