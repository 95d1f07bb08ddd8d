"""Serving the cloud half: the Triton model repository written into every bundle (`repository`),
the profile's `[serving]` settings (`settings`), the tritonserver launcher (`server`), the edge
client that sends z on the wire format (`client`) and the end-to-end benchmark (`e2e_bench`).

Nothing here imports tritonclient, onnx or onnxruntime at module level: they load when used.
"""
