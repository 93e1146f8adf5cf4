"""The one device chooser: cuda > mps > cpu, overridable."""

from __future__ import annotations

from explorer.errors import ExplorerError
from explorer.types import DEVICES

__all__ = ["choose_device"]


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
