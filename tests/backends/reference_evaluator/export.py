from pathlib import Path

from sift_deploy.backends.base import ExportRequest, ExportResult
from sift_deploy.backends.onnx_common import export_onnx

EDGE_FILE = "edge.reference.onnx"


def export(request: ExportRequest) -> ExportResult:
    details = export_onnx(request.edge, request.input_shape, Path(request.out_dir) / EDGE_FILE, rewrite=False)
    return ExportResult(files={"edge": EDGE_FILE}, details=details)
