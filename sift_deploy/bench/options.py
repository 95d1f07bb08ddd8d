"""What a bench run is asked to do (`sift-deploy bench` options), and the checks on those options."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import SiftError

DEFAULT_ITERATIONS = 500
DEFAULT_WARMUP = 50
DEFAULT_TOLERANCE_PCT = 10.0
DEFAULT_PROFILE_RUNS = 50


@dataclass
class BenchOptions:
    iterations: int = DEFAULT_ITERATIONS
    warmup: int = DEFAULT_WARMUP
    threads: int | None = None  # None: the profile's threads, capped at the usable cores
    batch: int = 1
    runtime: str | None = None  # None: the bundle's own runtime; else one of its backend's stand-ins
    baseline: Path | None = None
    tolerance_pct: float = DEFAULT_TOLERANCE_PCT
    memory: bool = True  # the subprocess memory probe (tests may turn it off)
    profile: bool = False  # per-op profile (Runner.profile), in its own session after the timed loop
    profile_runs: int = DEFAULT_PROFILE_RUNS

    def validate(self) -> None:
        if self.iterations < 1:
            raise SiftError(f"--iterations must be at least 1 (got {self.iterations})")
        if self.warmup < 0:
            raise SiftError(f"--warmup must be 0 or more (got {self.warmup})")
        if self.batch < 1:
            raise SiftError(f"--batch must be at least 1 (got {self.batch})")
        if self.threads is not None and self.threads < 1:
            raise SiftError(f"--threads must be at least 1 (got {self.threads})")
        if self.profile_runs < 1:
            raise SiftError(f"--profile-runs must be at least 1 (got {self.profile_runs})")
        if not self.tolerance_pct >= 0:
            raise SiftError(f"--tolerance must be a percentage of 0 or more (got {self.tolerance_pct})")
