"""Learning-rate schedules: a step's rate from the base rate, the step and the planned total."""

from __future__ import annotations

import math


def poly_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up, then the poly schedule ``(1 - t)^0.9`` of torchvision's segmentation
    reference."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (1 - t) ** 0.9


def cosine_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up, then a cosine decay to 0 (the classifier recipe)."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * 0.5 * (1 + math.cos(math.pi * t))
