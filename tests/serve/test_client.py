"""The edge client against a real tritonserver: `sift-deploy infer` (gRPC and HTTP, .npz and image
folders), answers equal to local ONNX Runtime, malformed requests rejected while the server keeps
serving, load without loss, kill -9 mid-load, and `bench --server`. All on 127.0.0.1."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from sift_deploy import wire
from sift_deploy.backends.onnx_common import onnx_outputs
from sift_deploy.serve.client import ServerError, TritonEdgeClient, WireClient

from .conftest import free_ports, run_load, start_server
from .test_server import one_line_error
from tests.conftest import invoke


@pytest.fixture(scope="module")
def reference_npz(reference, tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "reference.npz"
    np.savez(path, images=reference.images, labels=reference.labels)
    return path


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_infer_predicts_what_the_local_pipeline_predicts(triton, serve_bundle, reference, reference_npz, protocol):
    result = invoke("infer", serve_bundle, reference_npz, "--server", triton.client_url(protocol), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    pred = np.array([p["class"] for p in doc["predictions"]])
    np.testing.assert_array_equal(pred, reference.logits.argmax(1))
    # accuracy through edge -> wire -> Triton equals the bundle's own int8-wire parity figure (same images)
    assert doc["accuracy"] == pytest.approx(reference.manifest["parity"]["wire_int8"]["accuracy"], abs=1e-12)
    assert doc["images"] == len(reference.images)


def test_infer_reads_an_image_folder_and_prints_one_line_per_image(triton, serve_bundle, reference, tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(reference.images[i, 0]).save(folder / f"img{i}.png")
    result = invoke("infer", serve_bundle, folder, "--server", triton.client_url("grpc"))
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [r[0] for r in rows] == [f"img{i}.png" for i in range(5)]
    assert [int(r[1]) for r in rows] == list(reference.logits[:5].argmax(1))
    assert "5 images via grpc://127.0.0.1" in result.stderr


def test_infer_against_no_server_is_one_line(serve_bundle, reference_npz):
    port = free_ports()["grpc"]
    one_line_error(invoke("infer", serve_bundle, reference_npz, "--server", f"grpc://127.0.0.1:{port}", "--timeout", "3"),
                   "cannot reach Triton", "sift-deploy serve")
    one_line_error(invoke("infer", serve_bundle, reference_npz, "--server", "ftp://x:1"), "grpc://HOST:PORT")


def test_the_client_is_shaped_like_a_runner(triton, serve_bundle, reference):
    client = TritonEdgeClient(serve_bundle, triton.client_url("grpc"))
    client.activate()
    try:
        np.testing.assert_allclose(client.infer(reference.inputs[:4]), reference.logits[:4], atol=1e-4)
        assert set(client.last_timing) == {"edge_s", "encode_s", "rpc_s"}
        assert "onnxruntime" in client.versions() and "tritonclient" in client.versions()
    finally:
        client.deactivate()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_malformed_requests_are_rejected_and_the_server_keeps_serving(triton, reference, protocol):
    params = reference.manifest["features"]["wire_int8"]
    client = WireClient(triton.client_url(protocol), reference.manifest["serving"], params, timeout_s=5).connect()
    q = wire.quantize(reference.z[:2], params)
    scales = np.tile(np.asarray(params["scales"], np.float32), (2, 1))
    bad = {
        "wrong dtype": ([("z_q", q.astype(np.float32)), ("scales", scales)], "data-type"),
        "wrong shape": ([("z_q", q[:, :, :, :7].copy()), ("scales", scales)], "shape"),
        "wrong scale count": ([("z_q", q), ("scales", scales[:, :11].copy())], "shape"),
        "NaN scales": ([("z_q", q), ("scales", np.where(np.arange(12) == 3, np.nan, scales).astype(np.float32))], "NaN"),
        "negative scale": ([("z_q", q), ("scales", -scales)], "positive"),
        "missing input": ([("z_q", q)], "scales"),
    }
    try:
        for case, (arrays, fragment) in bad.items():
            with pytest.raises(ServerError) as info:
                client.send_arrays(arrays)
            message = str(info.value)
            assert "\n" not in message and "rejected the request" in message and fragment in message, (case, message)
            # the server still answers a good request, correctly
            np.testing.assert_allclose(client.send(reference.z[:2]), reference.logits[:2], atol=1e-4)
    finally:
        client.close()


def test_short_load_loses_nothing_and_answers_right(triton, reference):
    result = run_load(triton.client_url("grpc"), reference, clients=16, seconds=4)
    print(f"\nshort load: 16 clients, {result.seconds:.1f} s, {result.answered} answers "
          f"({result.answered / result.seconds:.0f}/s), {len(result.failures)} failures, {result.wrong} wrong")
    assert result.hung_threads == 0
    assert result.failures == [] and result.wrong == 0 and result.lost == 0
    assert result.answered > 16


@pytest.mark.slow
def test_64_clients_for_60_s_lose_nothing_and_answer_right(triton, reference):
    result = run_load(triton.client_url("grpc"), reference, clients=64, seconds=60, timeout_s=30)
    print(f"\nload: 64 clients, {result.seconds:.1f} s, {result.answered} answers "
          f"({result.answered / result.seconds:.0f}/s), {len(result.failures)} failures, {result.wrong} wrong")
    assert result.hung_threads == 0
    assert result.failures == [] and result.wrong == 0 and result.lost == 0


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_kill_9_mid_load_fails_fast_in_one_line_and_a_restart_serves(needs_triton, serve_bundle, reference, protocol):
    ports = free_ports()
    server = start_server(serve_bundle, ports)
    timeout_s = 5.0
    killed_at = []
    try:
        def kill_soon():
            time.sleep(1.5)
            killed_at.append(time.monotonic())
            server.kill()  # SIGKILL of the tritonserver we started, by its PID

        import threading

        threading.Thread(target=kill_soon, daemon=True).start()
        result = run_load(server.client_url(protocol), reference, clients=8, seconds=8, timeout_s=timeout_s,
                          stop_on_failure=True)
        finished = time.monotonic()
        assert killed_at, "the server was not killed"
        assert result.hung_threads == 0
        assert result.answered > 0 and result.wrong == 0
        assert len(result.failures) == 8  # every client noticed, once, and stopped
        assert all("\n" not in f and "Triton at" in f for f in result.failures), result.failures[:2]
        print(f"\nkill -9 ({protocol}): every client failed {finished - killed_at[0]:.2f} s after the kill or sooner")
        assert finished - killed_at[0] < timeout_s + 5
        print(f"\nkill -9 ({protocol}): {result.answered} answers before, first failure: {result.failures[0]}")
    finally:
        server.stop()
    restarted = start_server(serve_bundle, ports)  # same ports, fresh process
    try:
        client = WireClient(restarted.client_url(protocol), reference.manifest["serving"],
                            reference.manifest["features"]["wire_int8"], timeout_s=5).connect()
        np.testing.assert_allclose(client.send(reference.z[:3]), reference.logits[:3], atol=1e-4)
        client.close()
    finally:
        restarted.stop()


def test_bench_server_splits_latency_and_counts_bytes(triton, serve_bundle, tmp_path):
    out = tmp_path / "e2e.json"
    result = invoke("bench", serve_bundle, "--server", triton.client_url("grpc"), "--clients", "4",
                    "--iterations", "30", "--warmup", "3", "--json-file", out)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    split = report["latency"]["split"]
    for part in ("edge", "network_and_queue", "queue", "cloud_compute", "total"):
        assert split[part]["count"] == 30 and split[part]["p50_ms"] <= split[part]["p99_ms"]
    assert split["total"]["p50_ms"] > split["cloud_compute"]["p50_ms"] > 0
    tp = report["throughput"]
    assert tp["clients"] == 4 and tp["failures"] == 0 and tp["requests"] == 4 * 30
    b = report["bytes"]
    assert b["payload_per_request"]["sent"] == 12 * 8 * 8 + 12 * 4  # uint8 z + float32 scales
    assert b["measured_per_request"]["sent"] > b["payload_per_request"]["sent"]  # framing on top of the payload
    assert b["computed_today"]["int8_per_image"] == 768
    assert "network + queue" in result.stdout and "counted at the socket" in result.stdout


def test_bench_server_prints_json(triton, serve_bundle):
    result = invoke("bench", serve_bundle, "--server", triton.client_url("http"), "--iterations", "5", "--warmup", "1",
                    "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["throughput"]["requests"] == 5


def test_bench_server_checks_its_output_files_before_it_connects(serve_bundle, tmp_path):
    """No server listens on the port: had bench connected first, the error would be about the server."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for option in ("--json-file", "--markdown"):
        result = invoke("bench", serve_bundle, "--server", f"grpc://127.0.0.1:{free_port}", option, blocker / "out")
        assert result.exit_code == 2, result.output
        assert "is a file, not a folder" in result.stderr and "127.0.0.1" not in result.stderr


def test_a_server_that_stops_answering_fails_within_the_timeout(needs_triton, serve_bundle, reference):
    import os
    import signal

    server = start_server(serve_bundle)
    client = WireClient(server.client_url("grpc"), reference.manifest["serving"],
                        reference.manifest["features"]["wire_int8"], timeout_s=2).connect()
    try:
        client.send(reference.z[:1])
        os.kill(server.pid, signal.SIGSTOP)  # frozen, not gone: the connection stays open
        started = time.monotonic()
        with pytest.raises(ServerError, match="did not answer within 2 s"):
            client.send(reference.z[:1])
        assert time.monotonic() - started < 2 + 3
    finally:
        os.kill(server.pid, signal.SIGCONT)
        client.close()
        server.stop()


def test_a_float_wire_profile_serves_float_z_and_rejects_nan(needs_triton, reference, tmp_path):
    from sift_deploy.export import export_bundle
    from sift_deploy.profiles import TARGETS_DIR

    profile = tmp_path / "x86-float-wire.toml"
    profile.write_text((TARGETS_DIR / "x86-64.toml").read_text().replace('wire = "uint8"', 'wire = "float32"'))
    bundle = tmp_path / "float-wire"
    # fp32 edge: the wire is the point here, and a float edge skips int8 calibration
    manifest = export_bundle(None, str(profile), "fp32", output=bundle, parity_on_test_split=False).manifest
    assert manifest["serving"]["wire"] == "float32" and [i["name"] for i in manifest["serving"]["inputs"]] == ["z"]
    server = start_server(bundle)
    client = WireClient(server.client_url("grpc"), manifest["serving"], manifest["features"]["wire_int8"], 5).connect()
    try:
        np.testing.assert_allclose(client.send(reference.z[:4]), onnx_outputs(bundle / "cloud.onnx", reference.z[:4]),
                                   atol=1e-4)
        z = reference.z[:2].copy()
        z[0, 0, 0, 0] = np.nan
        with pytest.raises(ServerError, match="rejected the request: z holds NaN"):
            client.send(z)
        assert client.send(reference.z[:1]).shape == (1, 10)
    finally:
        client.close()
        server.stop()
