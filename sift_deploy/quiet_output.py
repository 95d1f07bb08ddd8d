"""Keep third-party log noise out of the user's terminal.

absl, oneDNN, TensorFlow Lite's XNNPACK line and torchao's library-load failures are written by
C++ code straight to file descriptor 2, so Python's logging and warnings filters cannot stop them.
Around the noisy work, fd 2 (and sys.stderr) point at a temporary file; our own lines go to a
duplicate of the original stderr. If the work fails with a bug (not a SiftError), the hidden
output is replayed, because then it may explain the traceback.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator, TextIO

from .errors import SiftError


def _writes_to_fd2(stream: TextIO) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


@contextmanager
def third_party_output_hidden(hide: bool = True) -> Iterator[TextIO]:
    """Yield the stream for our own stderr lines; with `hide`, everything else written to stderr
    inside the block is held back."""
    if not hide:
        yield sys.stderr
        return
    original = sys.stderr
    original.flush()
    saved_fd = os.dup(2)
    ours = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8", errors="replace") \
        if _writes_to_fd2(original) else original  # under a test runner, sys.stderr is its capture
    native = tempfile.TemporaryFile()
    python = io.StringIO()
    os.dup2(native.fileno(), 2)
    sys.stderr = python
    try:
        yield ours
    except BaseException as exc:
        _restore(original, saved_fd)
        if not isinstance(exc, (SiftError, KeyboardInterrupt)):
            native.seek(0)
            original.write(native.read().decode("utf-8", "replace") + python.getvalue())
            original.flush()
        raise
    else:
        _restore(original, saved_fd)
    finally:
        native.close()
        if ours is not original:
            ours.close()


def _restore(original: TextIO, saved_fd: int) -> None:
    if sys.stderr is original:  # restored already
        return
    sys.stderr = original
    os.dup2(saved_fd, 2)
    os.close(saved_fd)
