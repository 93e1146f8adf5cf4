"""The settings a run trains with: :class:`TrainSettings`, every value decided.

:class:`~explorer.training.config.TrainConfig` is what a user asks for (None = the preset's or the
task's default); its ``resolved()`` gives a :class:`TrainSettings`, which the trainer, the tasks
and the checkpoints read, and which a run folder's ``config.json`` saves as its ``settings``.
No imports beyond the standard library: the Train page and the run-folder reader import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from explorer.types import Task

REQUIRED = ("epochs", "batch_size", "lr", "image_size")
"""The settings a preset or the task's defaults always fill (None in a TrainConfig)."""


@dataclass(frozen=True)
class TrainSettings:
    """Every setting of one run. The fields (names and order) are TrainConfig's, so a run
    folder's ``settings`` keys stay the same whichever of the two wrote them."""

    task: Task
    coco: str
    images: str
    model: str
    val_coco: str | None
    val_images: str | None
    encoder: str | None  # None: the model takes no encoder (classifiers)
    pretrained: bool
    freeze_features: bool
    epochs: int
    batch_size: int
    lr: float
    image_size: int
    device: str
    preset: str | None
    out: str | None
    seed: int
    val_fraction: float
    min_area: float
    class_weights: bool
    dice: bool
    time_budget: float | None  # None: no budget
    workers: int
    extra: dict[str, Any]

    def __post_init__(self) -> None:
        # the values come from dicts (a preset, config.json): say which one was never decided
        missing = [name for name in REQUIRED if getattr(self, name) is None]
        if missing:
            raise TypeError(f"settings without {', '.join(missing)}")
