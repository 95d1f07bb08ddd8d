"""`sift-deploy serve`: the real tritonserver on free loopback ports; start-up, endpoints, a clean stop
on SIGTERM and Ctrl-C (SIGINT), and one-line errors for a taken port or a missing binary."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sift_deploy.cli import app

from .conftest import free_ports

REPO_ROOT = Path(__file__).resolve().parents[2]


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_prints_endpoints_and_stops_cleanly(needs_triton, serve_bundle, stop_signal):
    ports = free_ports()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "sift_deploy", "serve", str(serve_bundle),
                             "--http-port", str(ports["http"]), "--grpc-port", str(ports["grpc"]),
                             "--metrics-port", str(ports["metrics"])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("Ctrl-C stops" in ln for ln in lines):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "serve did not report ready within 120 s"
            time.sleep(0.2)
        out = "".join(lines)
        assert f"grpc://127.0.0.1:{ports['grpc']}" in out and f"http://127.0.0.1:{ports['http']}" in out
        assert f"http://127.0.0.1:{ports['metrics']}/metrics" in out
        server_pid = int(re.search(r"tritonserver pid (\d+)", out).group(1))
        url = f"http://127.0.0.1:{ports['http']}/v2/models/sift_cloud/ready"
        with urllib.request.urlopen(url, timeout=5) as reply:
            assert reply.status == 200
        proc.send_signal(stop_signal)
        assert proc.wait(30) == 0, proc.stderr.read()
        reader.join(5)
        assert "stopped tritonserver" in "".join(lines)
        assert not pid_alive(server_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_taken_port_is_one_line_with_the_option_to_change(needs_triton, serve_bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ports = free_ports()
        result = CliRunner().invoke(app, ["serve", str(serve_bundle), "--grpc-port", str(port),
                                          "--http-port", str(ports["http"]), "--metrics-port", str(ports["metrics"])])
    one_line_error(result, f"port {port} (grpc) is already taken", "--grpc-port")


def test_a_missing_server_binary_is_one_line_with_the_fix(serve_bundle, tmp_path):
    result = CliRunner().invoke(app, ["serve", str(serve_bundle)],
                                env={"SIFT_TRITONSERVER": str(tmp_path / "no-such-tritonserver")})
    one_line_error(result, "SIFT_TRITONSERVER", "tritonserver binary")


def test_serve_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    one_line_error(CliRunner().invoke(app, ["serve", str(tmp_path)]), "no manifest.json")
