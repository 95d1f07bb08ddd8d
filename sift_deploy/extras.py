"""Which pyproject extra a command needs, and the one-line error when a light install lacks it.

A device install (`pip install '.[rpi]'`) has numpy, typer, rich, pydantic and the runtime only:
`verify` and `bench` run there, the other commands need torch and friends from an extra.
"""

from __future__ import annotations

import importlib.util
from contextlib import contextmanager

from .errors import SiftError

INSTALL_FROM_CLONE = "pip install './sift-deploy[{extra}]' (sift-deploy: a clone of the repository; see the README)"

# command -> (extra, modules it imports from that extra)
COMMAND_NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("export", ("torch", "safetensors")),
    "inspect": ("export", ("torch", "safetensors")),
    "export": ("export", ("torch", "safetensors", "onnx", "onnxruntime")),
    "check": ("check", ("torch", "safetensors", "skimage", "scipy", "PIL")),
    "convert": ("export", ("torch", "safetensors")),
    "advise": ("export,check", ("torch", "safetensors", "onnx", "onnxruntime", "skimage", "scipy")),
}


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a blocked module (sys.modules[name] = None) or a broken parent
        return True


def missing_extra_message(command: str, module: str) -> str:
    extra = COMMAND_NEEDS[command][0]
    kind = "extras" if "," in extra else "extra"
    return f"{command} needs the '{extra}' {kind} ({module} is not installed): {INSTALL_FROM_CLONE.format(extra=extra)}"


def require_extra(command: str) -> None:
    """Raise SiftError naming the extra when a module `command` imports is not installed."""
    _, modules = COMMAND_NEEDS[command]
    for module in modules:
        if _missing(module):
            raise SiftError(missing_extra_message(command, module))


@contextmanager
def needs_extra(command: str):
    """Check the command's extra up front, and turn a third-party ModuleNotFoundError raised later
    (a lazy import deep in the command) into the same one-line error."""
    require_extra(command)
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top == "sift_deploy":
            raise
        raise SiftError(missing_extra_message(command, top)) from exc
