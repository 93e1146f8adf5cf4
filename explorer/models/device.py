"""The one device chooser: cuda > mps > cpu, overridable; the CPU threads a process may use."""

from __future__ import annotations

import math
import os
from pathlib import Path

from explorer.errors import ExplorerError
from explorer.types import DEVICES

__all__ = ["choose_device", "cpu_threads"]


def choose_device(preference: str = "auto") -> str:
    """Resolve ``auto`` to the best available device; check an explicit one is there."""
    import torch

    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if preference == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise ExplorerError("--device cuda: no CUDA GPU is available here (use auto or cpu)")
    if preference == "mps" and not mps:
        raise ExplorerError("--device mps: Apple's MPS is not available here (use auto or cpu)")
    if preference not in DEVICES and not preference.startswith("cuda:"):
        raise ExplorerError(f"unknown device {preference!r}; valid: {', '.join(DEVICES)}")
    return preference


def cpu_threads(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may really use: its CPU affinity, capped by a cgroup CPU quota.

    ``os.cpu_count()`` is the host's count inside a container; as many torch threads on a
    2-core quota run many times slower than 2 threads.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota
    return max(1, cores)
