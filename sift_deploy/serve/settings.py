"""The optional `[serving]` table of a target profile: how the cloud half is served by Triton.

```toml
[serving]
max_batch_size = 64                # 0 turns batching off
preferred_batch_sizes = [8, 32]    # dynamic batching: sizes the scheduler aims for
max_queue_delay_us = 500           # how long a request may wait for others to form a batch
instance_count = 2                 # model instances per server (one ONNX Runtime session each)
wire = "uint8"                     # "uint8": z as uint8 + per-channel scales; "float32": z as float
tensorrt_plan = false              # also write a TensorRT-plan variant (built on the GPU server)
threads_per_instance = 1           # ONNX Runtime intra-op threads of each python-variant instance
```
Every key is optional; a profile without the table gets the defaults below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import SiftError

WIRES = ("uint8", "float32")


@dataclass(frozen=True)
class ServingSettings:
    max_batch_size: int = 64
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 500
    instance_count: int = 1
    wire: str = "uint8"
    tensorrt_plan: bool = False
    threads_per_instance: int = 1
    extra: dict = field(default_factory=dict, compare=False)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        d["preferred_batch_sizes"] = list(self.preferred_batch_sizes)
        return d


_TYPES = {"max_batch_size": int, "preferred_batch_sizes": list, "max_queue_delay_us": int, "instance_count": int,
          "wire": str, "tensorrt_plan": bool, "threads_per_instance": int}


def parse_serving(table: dict | None, where: str = "profile") -> ServingSettings:
    """The `[serving]` table (None or absent: defaults), checked; SiftError names the bad key."""
    if table is None:
        return ServingSettings()
    where = f"{where} [serving]"
    if not isinstance(table, dict):
        raise SiftError(f"{where} must be a table")
    unknown = set(table) - set(_TYPES)
    if unknown:
        raise SiftError(f"{where} has unknown field(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_TYPES))}")
    values = {}
    for key, kind in _TYPES.items():
        if key not in table:
            continue
        value = table[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SiftError(f"{where}: '{key}' must be {kind.__name__}, got {type(value).__name__} {value!r}")
        values[key] = value
    settings = ServingSettings(**{**values, "preferred_batch_sizes": tuple(values.get("preferred_batch_sizes", ()))})
    if settings.max_batch_size < 0:
        raise SiftError(f"{where}: max_batch_size must be 0 (no batching) or more")
    if settings.instance_count < 1 or settings.threads_per_instance < 1:
        raise SiftError(f"{where}: instance_count and threads_per_instance must be at least 1")
    if settings.max_queue_delay_us < 0:
        raise SiftError(f"{where}: max_queue_delay_us must not be negative")
    if settings.wire not in WIRES:
        raise SiftError(f"{where}: wire '{settings.wire}' is unknown; use {' or '.join(WIRES)}")
    for size in settings.preferred_batch_sizes:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1 or size > max(settings.max_batch_size, 0):
            raise SiftError(f"{where}: preferred_batch_sizes must be integers from 1 to max_batch_size "
                            f"({settings.max_batch_size}), got {size!r}")
    return settings


def settings_of_profile(profile) -> ServingSettings:
    """The serving settings of a parsed profile (`Profile.extra['serving']`, or defaults)."""
    return parse_serving(getattr(profile, "extra", {}).get("serving"), f"profile {getattr(profile, 'source', '')}".strip())
