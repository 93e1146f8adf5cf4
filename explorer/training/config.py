"""Training settings: one :class:`TrainConfig` per run, filled from a preset and the task's
defaults. Which models train, and their presets, come from the model registry's records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from explorer.errors import ExplorerError
from explorer.models.registry import get_spec, list_models
from explorer.training.settings import TrainSettings
from explorer.training.tasks import train_task
from explorer.types import TASKS, Task

PRESET_NAMES = ("quick",)
"""quick: each record's ``quick`` recipe (measured on the embedded sample, docs/BENCHMARKS.md)."""


def task_models(task: Task) -> tuple[str, ...]:
    """The models a task can train, in the order a newcomer should try them: those that learn
    a dataset's classes first, then those with a quick recipe, then the rest."""
    specs = [get_spec(n) for n in list_models(task) if get_spec(n).trainable]
    specs.sort(key=lambda s: (s.label_space != "dataset", s.quick is None))  # stable
    return tuple(s.name for s in specs)


def preset_settings(preset: str | None, model: str) -> dict[str, Any]:
    """A preset's settings for one model ({} for no preset, or a model without that recipe)."""
    if not preset:
        return {}
    if preset not in PRESET_NAMES:
        raise ExplorerError(f"unknown preset {preset!r}; valid: {', '.join(PRESET_NAMES)}")
    quick = get_spec(model).quick
    return quick.settings() if quick else {}


@dataclass
class TrainConfig:
    """Every setting of a run as asked (None = the preset's, else the task's default);
    :meth:`resolved` decides them all."""

    task: Task
    coco: str
    images: str
    model: str
    val_coco: str | None = None
    val_images: str | None = None
    encoder: str | None = None
    pretrained: bool = False
    freeze_features: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str = "auto"
    preset: str | None = None
    out: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    min_area: float = 64.0
    class_weights: bool = False
    dice: bool = False
    time_budget: float | None = None
    workers: int = 2
    extra: dict = field(default_factory=dict)

    def resolved(self) -> TrainSettings:
        """Every None filled: the explicit settings, else the preset's, else the task's."""
        if self.task not in TASKS:
            raise ExplorerError(f"unknown task {self.task!r}; valid: {', '.join(TASKS)}")
        models = task_models(self.task)
        if self.model not in models:
            raise ExplorerError(
                f"{self.model} cannot be trained for {self.task}; valid: {', '.join(models)}"
            )
        base = {**train_task(self.task).defaults, **preset_settings(self.preset, self.model)}
        values = asdict(self)
        for k, v in base.items():
            if values.get(k) is None:
                values[k] = v
        smallest = get_spec(self.model).min_input_size
        if smallest and values["image_size"] < smallest:
            raise ExplorerError(
                f"{self.model} needs --image-size {smallest} or more "
                f"(got {values['image_size']}: its pools would leave nothing)"
            )
        return TrainSettings(**values)
