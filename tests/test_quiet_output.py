"""Third-party noise stays out of the user's terminal: what C++ code writes to fd 2 and what Python
libraries print on stderr is held back, our own lines get through, and --verbose lets it all through."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

NOISY = """
import os, sys, warnings
from sift_deploy.quiet_output import third_party_output_hidden
with third_party_output_hidden(hide={hide}) as ours:
    os.write(2, b"I0000 native library chatter\\n")
    print("python-level chatter", file=sys.stderr)
    warnings.warn("a library's FutureWarning", FutureWarning)
    print("export: our stage line", file=ours, flush=True)
    {fail}
print("after: stderr is back", file=sys.stderr)
"""


def run_noisy(hide: bool, fail: str = "pass") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", NOISY.format(hide=hide, fail=fail)], capture_output=True, text=True,
                          timeout=120)


def test_noise_is_hidden_and_our_lines_pass():
    proc = run_noisy(hide=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == ["export: our stage line", "after: stderr is back"]


def test_without_hiding_everything_shows():
    proc = run_noisy(hide=False)
    for text in ("native library chatter", "python-level chatter", "FutureWarning", "export: our stage line"):
        assert text in proc.stderr


def test_a_bug_replays_the_hidden_output():
    proc = run_noisy(hide=True, fail="raise RuntimeError('our bug')")
    assert proc.returncode == 1
    assert "native library chatter" in proc.stderr and "RuntimeError: our bug" in proc.stderr


def test_a_user_error_does_not_replay_it():
    proc = run_noisy(hide=True, fail="from sift_deploy.errors import SiftError; raise SiftError('bad input')")
    assert "native library chatter" not in proc.stderr and "SiftError: bad input" in proc.stderr


HAS_LITERT = all(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "litert_torch"))


@pytest.mark.slow  # two Pi exports: about 3 minutes on 2 shared cores
@pytest.mark.litert
@pytest.mark.skipif(not HAS_LITERT, reason="ai-edge-litert / litert-torch are not installed (pip install './sift-deploy[rpi,rpi-export]')")
def test_a_real_rpi_export_prints_only_our_lines(fashion_mnist_subset, tmp_path):
    """The Pi export is the noisiest (absl, oneDNN, torchao, torch.compile, XNNPACK): with a small real
    dataset it takes seconds, and its stderr holds our stage lines only; --verbose shows the rest."""
    def export(out, *extra):
        return subprocess.run([sys.executable, "-m", "sift_deploy", "export", "--target", "rpi", "--precision", "fp32",
                               "--data-dir", str(fashion_mnist_subset), "-o", str(out), *extra],
                              capture_output=True, text=True, timeout=600)

    quiet = export(tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stderr.splitlines()
    assert lines and all(line.startswith("export: ") for line in lines), quiet.stderr
    assert "export: checking parity on 200 images (litert)" in lines
    assert quiet.stdout.strip().splitlines()[-1].startswith("PASS")
    verbose = export(tmp_path / "verbose", "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert any(not line.startswith("export: ") for line in verbose.stderr.splitlines()), verbose.stderr
