"""Where a bench ran: device model, cores, CPU governor, OS, kernel, Python, runtime versions, L4T
release on a Jetson, load average. Read from /proc, /sys and /etc where they exist."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from .statistics import usable_cores


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return None


def cpu_model() -> str | None:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Hardware", "Model", "cpu model", "Processor"):
        for line in text.splitlines():
            if line.split(":", 1)[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or None


def os_release() -> str:
    text = _read("/etc/os-release") or ""
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def l4t_release() -> str | None:
    """'R36.4.0' from /etc/nv_tegra_release ('# R36 (release), REVISION: 4.0, ...'), where present."""
    text = _read("/etc/nv_tegra_release")
    if not text:
        return None
    first = text.splitlines()[0]
    try:
        major = first.split("R", 1)[1].split()[0]
        revision = first.split("REVISION:", 1)[1].split(",")[0].strip()
        return f"R{major}.{revision}"
    except IndexError:
        return first.lstrip("# ")


def provenance(threads: int, versions: dict) -> dict:
    device_model = _read("/proc/device-tree/model")  # Raspberry Pi, Jetson
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {
        "device_model": device_model or cpu_model() or "unknown",
        "device_model_source": "/proc/device-tree/model" if device_model else "/proc/cpuinfo",
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "cores_online": os.cpu_count(),
        "cores_usable": usable_cores(),
        "cpu_governor": governor or "not readable",
        "os": os_release(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "runtime_versions": versions,
        "threads": threads,
        "l4t_release": l4t_release(),
        "nv_tegra_release": (_read("/etc/nv_tegra_release") or "").splitlines()[0] if _read("/etc/nv_tegra_release") else None,
        "load_average_1_5_15": load,
    }
