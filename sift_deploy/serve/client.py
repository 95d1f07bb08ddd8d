"""The edge client: run the bundle's edge artifact here, put z on the wire format, send it to the
cloud half on a Triton server (gRPC or HTTP), get logits back.

`WireClient` speaks the wire format to one server (one connection; make one per thread).
`TritonEdgeClient` is shaped like a runner (activate / infer / deactivate / versions): normalised
images in, logits out, with the time of each part of the last call in `last_timing`.
Every failure a user can cause or meet (server down, timeout, request rejected) is a SiftError
with one line that says what happened.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .. import wire
from ..backends.base import Runner
from ..errors import SiftError
from ..perturbation import from_manifest, perturb

PROTOCOLS = ("grpc", "http")
DEFAULT_TIMEOUT_S = 10.0


class ServerError(SiftError):
    """The server could not be reached, did not answer in time, or rejected the request."""


def parse_server(url: str) -> tuple[str, str]:
    """'grpc://host:port' or 'http://host:port' (a bare host:port means HTTP) -> (protocol, 'host:port')."""
    text = url if "://" in url else f"http://{url}"
    parsed = urlparse(text)
    if parsed.scheme not in PROTOCOLS:
        raise SiftError(f"--server {url}: use grpc://HOST:PORT or http://HOST:PORT")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None:
        raise SiftError(f"--server {url} needs a host and a port, e.g. grpc://127.0.0.1:8001")
    return parsed.scheme, f"{parsed.hostname}:{port}"


def _reason(exc: BaseException) -> str:
    message = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    message = " ".join(str(message or type(exc).__name__).split())
    return message[:300]


class WireClient:
    """Sends features on the bundle's wire format to the `serving` model of a Triton server."""

    def __init__(self, server_url: str, serving: dict, wire_params: dict, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.url = server_url
        self.protocol, self.address = parse_server(server_url)
        self.serving = serving
        self.model = serving["model"]
        self.wire_params = wire_params
        self.timeout_s = float(timeout_s)
        self.scales = np.asarray(wire_params["scales"], np.float32)
        self._client = None
        self._module = None

    def connect(self) -> "WireClient":
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as module

                self._client = module.InferenceServerClient(self.address)
            else:
                import tritonclient.http as module

                self._client = module.InferenceServerClient(self.address, connection_timeout=self.timeout_s,
                                                            network_timeout=self.timeout_s)
        except ImportError as exc:
            raise SiftError(f"tritonclient is not installed ({exc.name}); pip install 'sift-deploy[serve]'") from exc
        self._module = module
        return self

    def check_ready(self) -> None:
        try:
            ready = self._client.is_model_ready(self.model, **self._timeout_kw())
        except Exception as exc:  # tritonclient raises its own and transport errors
            raise ServerError(f"cannot reach Triton at {self.url}: {_reason(exc)}; start it with "
                              "`sift-deploy serve BUNDLE` or check --server") from exc
        if not ready:
            raise ServerError(f"Triton at {self.url} does not have the model '{self.model}' ready; serve this "
                              "bundle's repository (sift-deploy serve BUNDLE)")

    def _timeout_kw(self) -> dict:
        return {"client_timeout": self.timeout_s} if self.protocol == "grpc" else {}

    def encode(self, z: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """The named arrays that go on the wire for features z (N, C, H, W)."""
        if self.serving["wire"] == "uint8":
            q = wire.quantize(np.asarray(z, np.float32), self.wire_params)
            return [("z_q", q), ("scales", np.broadcast_to(self.scales, (len(q), len(self.scales))).copy())]
        return [("z", np.ascontiguousarray(z, np.float32))]

    def send_arrays(self, arrays: list[tuple[str, np.ndarray]]) -> np.ndarray:
        """Send named arrays as they are (dtype from numpy) and return the logits."""
        from tritonclient.utils import np_to_triton_dtype

        inputs = []
        for name, array in arrays:
            item = self._module.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
            item.set_data_from_numpy(np.ascontiguousarray(array))
            inputs.append(item)
        outputs = [self._module.InferRequestedOutput("logits")]
        try:
            result = self._client.infer(self.model, inputs, outputs=outputs, **self._timeout_kw())
        except Exception as exc:
            text = _reason(exc)
            status = str(exc.status()) if hasattr(exc, "status") and callable(exc.status) else ""
            if "deadline" in text.lower() or "timed out" in text.lower() or "timeout" in text.lower():
                raise ServerError(f"Triton at {self.url} did not answer within {self.timeout_s:g} s") from exc
            if "INVALID_ARGUMENT" in status or status == "400" or "rejected:" in text:
                text = text.replace("[request id: <id_unknown>] ", "").replace("rejected: ", "")
                raise ServerError(f"Triton at {self.url} rejected the request: {text}") from exc
            if "UNAVAILABLE" in status or any(w in text.lower() for w in ("connection refused", "socket closed", "connection closed", "connection reset")):
                raise ServerError(f"Triton at {self.url} is unavailable ({text}); is the server running?") from exc
            raise ServerError(f"request to Triton at {self.url} failed: {text}") from exc
        return result.as_numpy("logits")

    def send(self, z: np.ndarray) -> np.ndarray:
        return self.send_arrays(self.encode(z))

    def statistics(self) -> dict:
        """Triton's cumulative statistics of the model (counts and nanoseconds)."""
        if self.protocol == "grpc":
            stats = self._client.get_inference_statistics(self.model, as_json=True, **self._timeout_kw())
        else:
            stats = self._client.get_inference_statistics(self.model)
        entry = stats["model_stats"][0]
        inference = entry.get("inference_stats", {})

        def part(name: str) -> tuple[int, int]:
            item = inference.get(name, {})
            return int(item.get("count", 0)), int(item.get("ns", 0))

        return {"inference_count": int(entry.get("inference_count", 0)),
                "execution_count": int(entry.get("execution_count", 0)),
                **{name: part(name) for name in ("success", "fail", "queue", "compute_input", "compute_infer",
                                                 "compute_output")}}

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None


class TritonEdgeClient(Runner):
    """Edge artifact here -> z -> wire -> Triton -> logits: a runner whose second half is a server."""

    name = "triton-edge-client"
    label = "edge artifact + Triton Inference Server (cloud half)"

    def __init__(self, bundle_dir: Path, server_url: str, threads: int | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, manifest: dict | None = None):
        from ..backends.base import FileLoader
        from ..bundle import require_intact

        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest or require_intact(self.bundle_dir)
        super().__init__(FileLoader(self.bundle_dir / self.manifest["edge_file"]),
                         threads or int(self.manifest["profile"]["threads"]))
        if not self.manifest.get("serving"):
            raise SiftError(f"bundle {bundle_dir} has no Triton model repository (exported by an older "
                            "sift-deploy); re-export it")
        self.wire = WireClient(server_url, self.manifest["serving"], self.manifest["features"]["wire_int8"], timeout_s)
        self.perturbation = from_manifest(self.manifest)
        self.rng = np.random.default_rng()  # fresh draws per request, unseeded: a device must not replay its noise
        self.runner = None
        self.last_timing: dict[str, float] = {}

    def _activate(self) -> None:
        from ..backends import open_runner

        self.wire.connect().check_ready()
        self.runner = open_runner(self.bundle_dir, self.manifest, threads=self.threads).activate()

    def edge(self, x: np.ndarray) -> np.ndarray:
        return self.runner.infer(x)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """float32 normalised images (N, C, H, W) -> float32 logits (N, classes)."""
        t0 = time.perf_counter()
        z = perturb(self.runner.infer(x), self.perturbation, self.rng)
        t1 = time.perf_counter()
        arrays = self.wire.encode(z)
        t2 = time.perf_counter()
        logits = self.wire.send_arrays(arrays)
        t3 = time.perf_counter()
        self.last_timing = {"edge_s": t1 - t0, "encode_s": t2 - t1, "rpc_s": t3 - t2}
        return logits

    def _deactivate(self) -> None:
        if self.runner is not None:
            self.runner.deactivate()
            self.runner = None
        self.wire.close()

    def versions(self) -> dict[str, str]:
        from importlib import metadata

        out = dict(self.runner.versions()) if self.runner is not None else {}
        try:
            out["tritonclient"] = metadata.version("tritonclient")
        except metadata.PackageNotFoundError:
            pass
        return out


def load_images(path: Path, channels: int) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """uint8 images (N, C, H, W), labels or None, and a name per image, from an .npz/.npy file or a folder
    (image files directly inside it, or one sub-folder per class)."""
    from ..data.calibration import load_image_file, validate_images

    path = Path(path)
    if not path.exists():
        raise SiftError(f"images {path} do not exist; pass an .npz/.npy of uint8 images or an image folder")
    if path.is_dir():
        from ..data.sources import IMAGE_SUFFIXES, _as_nchw, load_image_folder

        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            from PIL import Image

            arrays = []
            for file in files:
                with Image.open(file) as img:
                    arrays.append(np.asarray(img.convert("L" if channels == 1 else "RGB")))
            if len({a.shape for a in arrays}) != 1:
                raise SiftError(f"images in {path} have different sizes; resize them to one size first")
            images, labels, names = _as_nchw(np.stack(arrays), path), None, [f.name for f in files]
        else:
            data = load_image_folder(path)
            images, labels = data.train_images, data.train_labels
            names = [f"{data.class_names[label]}/{i}" for i, label in enumerate(labels)]
    else:
        images, labels, _ = load_image_file(path)
        names = [str(i) for i in range(len(images))]
    images = validate_images(images, channels, path, minimum=1)
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(images):
            labels = None
    return images, labels, names


def infer_images(bundle_dir: Path, images_path: Path, server_url: str, batch: int = 32,
                 timeout_s: float = DEFAULT_TIMEOUT_S, threads: int | None = None) -> dict:
    """Predictions for every image through edge -> wire -> Triton; accuracy when the file has labels."""
    from ..data.preprocess import model_input

    client = TritonEdgeClient(bundle_dir, server_url, threads=threads, timeout_s=timeout_s)
    manifest = client.manifest
    model = manifest["model"]
    images, labels, names = load_images(images_path, int(model["in_channels"]))
    norm = manifest["input"]["normalization"]
    top = int(manifest["serving"]["settings"]["max_batch_size"]) or batch
    batch = max(1, min(batch, top))
    logits = []
    started = time.perf_counter()
    with client:
        for i in range(0, len(images), batch):
            x = model_input(images[i:i + batch], int(model["input_size"]), norm["mean"], norm["std"])
            logits.append(client.infer(x))
        versions = client.versions()
    seconds = time.perf_counter() - started
    logits = np.concatenate(logits)
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    probs = shifted / shifted.sum(1, keepdims=True)
    pred = logits.argmax(1)
    classes = model.get("class_names") or [str(i) for i in range(logits.shape[1])]
    out = {
        "server": server_url, "model": manifest["serving"]["model"], "wire": manifest["serving"]["wire"],
        "images": int(len(images)), "seconds": round(seconds, 3), "batch": batch, "versions": versions,
        "predictions": [{"name": names[i], "class": int(pred[i]), "label": classes[int(pred[i])],
                         "confidence": round(float(probs[i, pred[i]]), 4),
                         **({"true": int(labels[i])} if labels is not None else {})} for i in range(len(pred))],
    }
    if labels is not None:
        out["accuracy"] = float((pred == labels).mean())
        parity = manifest.get("parity", {}).get("wire_int8", {})
        if "accuracy" in parity:
            out["bundle_parity_accuracy"] = parity["accuracy"]
    out["logits"] = logits
    return out
