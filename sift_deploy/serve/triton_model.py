"""Triton Python-backend model of the sift-deploy cloud half (copied into bundles as
triton/python/sift_cloud/1/model.py; it runs inside Triton's Python stub, not inside sift-deploy).

Wire format (config parameter `wire`): "uint8" -> inputs z_q (uint8 or int8, N x C x H x W) and
scales (float32, N x C), z = z_q * scales; "float32" -> input z (float32). Output: logits (float32).
Triton itself rejects a wrong dtype or shape; this model rejects non-finite values and
non-positive scales, each request on its own, so one bad request does not fail its batch mates.

Tensors cross the stub boundary through DLPack (np.from_dlpack / Tensor.from_dlpack): the stub's
own numpy bridge (as_numpy / Tensor(name, array)) reads wrong strides under numpy 2.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.wire = params.get("wire", "uint8")
        self.channels = int(params["channels"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("threads", "1"))
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        path = os.path.join(args["model_repository"], args["model_version"], params.get("onnx_file", "cloud.onnx"))
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name

    def _features(self, request):
        """float32 z of one request, or ValueError with the reason the request is rejected."""
        if self.wire == "uint8":
            q = np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "z_q"))
            scales = np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "scales"))
            if scales.shape != (q.shape[0], self.channels):
                raise ValueError(f"scales has shape {list(scales.shape)}; expected [{q.shape[0]}, {self.channels}] "
                                 "(one scale per channel per image)")
            if not np.isfinite(scales).all():
                raise ValueError("scales holds NaN or infinite values")
            if (scales <= 0).any():
                raise ValueError("scales must be positive")
            shape = (scales.shape[0], scales.shape[1]) + (1,) * (q.ndim - 2)
            return q.astype(np.float32) * scales.astype(np.float32).reshape(shape)
        z = np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "z"))
        if not np.isfinite(z).all():
            raise ValueError("z holds NaN or infinite values")
        return np.array(z, dtype=np.float32)

    def execute(self, requests):
        features, errors = [], []
        for request in requests:
            try:
                features.append(self._features(request))
                errors.append(None)
            except ValueError as exc:
                features.append(None)
                errors.append(f"rejected: {exc}")
        good = [f for f in features if f is not None]
        logits = self.session.run([self.output_name], {self.input_name: np.concatenate(good)})[0] if good else None
        responses, at = [], 0
        for f, error in zip(features, errors):
            if error is not None:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(error)))
                continue
            part = np.ascontiguousarray(logits[at:at + len(f)], dtype=np.float32)
            at += len(f)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor.from_dlpack("logits", part)]))
        return responses

    def finalize(self):
        self.session = None
