"""Start, watch and stop `tritonserver` on a bundle's model repository.

Where the binary comes from, in order: `$SIFT_TRITONSERVER` (a tritonserver binary), NVIDIA's
container layout (/opt/tritonserver), the `nvidia-pytriton` wheel (its `pytriton/tritonserver/`
holds a real tritonserver, its libraries and the Python backend; scripts/setup.sh installs it with
--no-deps into .venv/opt/tritonserver because it pins numpy<2), then `tritonserver` on PATH.

The wheel's Python backend needs the stub built for this Python beside it; we assemble that
backends folder in our cache (~/.cache/sift-deploy/triton-backends/...), never in site-packages.
The server binds loopback unless told otherwise, writes no bytecode into the bundle
(PYTHONDONTWRITEBYTECODE) and runs in its own session, so only `stop()` ends it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..bundle import require_intact
from ..errors import SiftError
from .repository import MODEL_NAME

INSTALL_HINT = ("install it with `pip install --no-deps --target .venv/opt/tritonserver nvidia-pytriton==0.7.0` "
                "(scripts/setup.sh does this), use NVIDIA's Triton container, or set SIFT_TRITONSERVER to a "
                "tritonserver binary")
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
PORT_OPTIONS = {"http": "--http-port", "grpc": "--grpc-port", "metrics": "--metrics-port"}


@dataclass
class TritonInstall:
    binary: Path
    backends: Path  # a backend directory as tritonserver expects it (python/ inside)
    libs: Path | None = None  # extra shared libraries (the wheel's nvidia_pytriton.libs)
    source: str = ""


def _pytriton_roots() -> list[Path]:
    roots = [Path(sys.prefix) / "opt" / "tritonserver"]
    spec = importlib.util.find_spec("pytriton")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        roots.append(Path(list(spec.submodule_search_locations)[0]).parent)
    return roots


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sift-deploy"


def _wheel_backends(tree: Path) -> Path:
    """The wheel's backends folder with the stub for this Python beside libtriton_python.so, in our cache."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = tree / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise SiftError(f"the tritonserver in {tree} has no Python backend stub for Python {version}; "
                        "use Python 3.8-3.13 or NVIDIA's Triton container")
    key = hashlib.sha256(f"{tree.resolve()}|{stub.stat().st_size}|{stub.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_dir() / "triton-backends" / key
    if (target / "python" / "triton_python_backend_stub").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=target.parent))
    try:
        shutil.copytree(tree / "backends", tmp / "backends", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(stub, tmp / "backends" / "python" / "triton_python_backend_stub")
        try:
            os.replace(tmp / "backends", target)
        except OSError:  # another process assembled it first
            if not (target / "python" / "triton_python_backend_stub").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def find_tritonserver() -> TritonInstall:
    explicit = os.environ.get("SIFT_TRITONSERVER")
    if explicit:
        binary = Path(explicit)
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise SiftError(f"SIFT_TRITONSERVER={explicit} is not an executable file; point it at a tritonserver binary")
        root = binary.parent.parent
        if (root / "python_backend_stubs").is_dir():
            return TritonInstall(binary, _wheel_backends(root), root.parent.parent / "nvidia_pytriton.libs", explicit)
        return TritonInstall(binary, root / "backends", None, explicit)
    container = Path("/opt/tritonserver/bin/tritonserver")
    if container.is_file():
        return TritonInstall(container, Path("/opt/tritonserver/backends"), None, "/opt/tritonserver")
    for root in _pytriton_roots():
        tree = root / "pytriton" / "tritonserver"
        if (tree / "bin" / "tritonserver").is_file():
            return TritonInstall(tree / "bin" / "tritonserver", _wheel_backends(tree), root / "nvidia_pytriton.libs",
                                 f"nvidia-pytriton in {root}")
    on_path = shutil.which("tritonserver")
    if on_path:
        binary = Path(on_path).resolve()
        return TritonInstall(binary, binary.parent.parent / "backends", None, on_path)
    raise SiftError(f"the tritonserver binary is not installed; {INSTALL_HINT}")


def port_is_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR like tritonserver: connections in
    TIME_WAIT from an earlier server do not count, a live listener does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _local(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


@dataclass
class TritonServer:
    """One tritonserver process serving `repository`; use as a context manager or start()/stop()."""

    repository: Path
    host: str = "127.0.0.1"
    ports: dict = field(default_factory=lambda: dict(DEFAULT_PORTS))
    startup_timeout_s: float = 120.0
    install: TritonInstall | None = None
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    keep_log: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def endpoints(self) -> dict[str, str]:
        return {"http": f"http://{self.host}:{self.ports['http']}", "grpc": f"grpc://{self.host}:{self.ports['grpc']}",
                "metrics": f"http://{self.host}:{self.ports['metrics']}/metrics"}

    def client_url(self, protocol: str = "grpc") -> str:
        return f"{protocol}://{_local(self.host)}:{self.ports[protocol]}"

    def command(self) -> list[str]:
        install = self.install
        return [str(install.binary), f"--model-repository={self._served}", f"--backend-directory={install.backends}",
                f"--http-address={self.host}", f"--grpc-address={self.host}", f"--metrics-address={self.host}",
                f"--http-port={self.ports['http']}", f"--grpc-port={self.ports['grpc']}",
                f"--metrics-port={self.ports['metrics']}", "--exit-timeout-secs=5", "--log-verbose=0",
                "--disable-auto-complete-config"]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # the stub's Python
        if self.install.libs is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in [str(self.install.libs), env.get("LD_LIBRARY_PATH", "")] if p)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ inside the hashed bundle
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
        return env

    def start(self) -> "TritonServer":
        if not (Path(self.repository) / MODEL_NAME / "config.pbtxt").is_file():
            raise SiftError(f"{self.repository} holds no {MODEL_NAME}/config.pbtxt; re-export the bundle")
        self.install = self.install or find_tritonserver()
        for name, port in self.ports.items():
            if not port_is_free(self.host, port):
                raise SiftError(f"port {port} ({name}) is already taken on {self.host}; pass {PORT_OPTIONS[name]} "
                                "with a free port or stop what holds it")
        # Serve a private copy: the Python stub writes __pycache__ next to model.py (it ignores
        # PYTHONDONTWRITEBYTECODE), and the bundle must stay byte-identical to its manifest.
        self._workdir = Path(tempfile.mkdtemp(prefix="sift-triton-"))
        self._served = self._workdir / "repository"
        shutil.copytree(self.repository, self._served)
        fd, log = tempfile.mkstemp(prefix="sift-tritonserver-", suffix=".log")
        os.close(fd)
        self.log_path = Path(log)
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(self.command(), stdout=log_file, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=self.environment(), start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.keep_log = True  # the error message names the log
            self.stop()
            raise
        return self

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        errors = [ln for ln in lines if ln.startswith("E") or "error" in ln.lower()]
        errors = [ln for ln in errors if "NVML" not in ln and "DCGM" not in ln]
        return (errors or lines or [""])[-1].strip()

    def ready(self) -> bool:
        url = f"http://{_local(self.host)}:{self.ports['http']}/v2/models/{MODEL_NAME}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                tail = self._log_tail()
                low = tail.lower()
                if "address already in use" in low or ("failed to start" in low and "port" in low):
                    raise SiftError(f"tritonserver could not bind its ports on {self.host} ({tail}); pass free "
                                    "--http-port/--grpc-port/--metrics-port")
                raise SiftError(f"tritonserver exited during start-up (code {code}): {tail} (log: {self.log_path})")
            if self.ready():
                return
            time.sleep(0.25)
        raise SiftError(f"tritonserver did not get {MODEL_NAME} ready within {self.startup_timeout_s:.0f} s "
                        f"(last log line: {self._log_tail()}; log: {self.log_path})")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL after `timeout_s`. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the server and its Python stubs
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._reap_group()
        if getattr(self, "_workdir", None) is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
        if self.log_path is not None and not self.keep_log:
            self.log_path.unlink(missing_ok=True)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the server process only (what a crash looks like to clients)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def _reap_group(self) -> None:
        """Python stubs left behind by a killed server belong to its process group: end them too."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def bundle_repository(bundle_dir: Path, variant: str = "python") -> tuple[Path, dict]:
    """The model repository of an intact bundle for one variant (python, onnxruntime, tensorrt)."""
    manifest = require_intact(bundle_dir)
    serving = manifest.get("serving")
    if not serving:
        raise SiftError(f"bundle {bundle_dir} has no Triton model repository (exported by an older sift-deploy); "
                        "re-export it")
    if variant not in serving["variants"]:
        raise SiftError(f"bundle {bundle_dir} has no '{variant}' Triton variant; it has {', '.join(serving['variants'])}")
    return Path(bundle_dir) / serving["variants"][variant], manifest
