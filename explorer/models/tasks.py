"""What every layer needs to know about a task, one record per task (as models have one
:class:`~explorer.models.registry.ModelSpec` each).

A task's behaviour lives in objects registered per layer and looked up by the model record's
``task``: this :class:`TaskKind` (labels, names), the output codec in
:mod:`explorer.inference.outputs` (what a prediction is and how it is stored) and the training
task in :mod:`explorer.training.tasks` (data, step, evaluation, metric). A new task is one
object in each, never a ``task == ...`` branch spread over files.
"""

from __future__ import annotations

from dataclasses import dataclass

from explorer.errors import ExplorerError
from explorer.types import TASKS, Task


@dataclass(frozen=True)
class TaskKind:
    """Facts about a task that models, inference, training and pages share.

    Attributes:
        name: the task's name (``ModelSpec.task``, ``--task``, checkpoints' ``task``).
        noun: what one of its models is called ("classifier"), in pickers and errors.
        background: output label 0 is background, which no dataset category is (a dataset
            label space then starts its categories at 1).
        scores_per_image: the output is one score vector per input (a softmax over classes),
            not a map per pixel.
        quality_metric: the validation score a training run measures and picks ``best.pt`` by
            (:mod:`explorer.training.tasks` names the same), the model's quality in pages.
        trusted_quality: the one threshold of a model's measured quality: at or above it the
            model's evidence counts fully, below it pages warn plainly and mistake scores are
            scaled by ``quality / trusted_quality`` (:mod:`explorer.models.quality`). The quick
            presets' targets on the sample.
    """

    name: Task
    noun: str
    background: bool
    scores_per_image: bool
    quality_metric: str
    trusted_quality: float

    def class_names(self, names: list[str]) -> list[str]:
        """The output labels' names for a dataset's category names."""
        return ["background", *names] if self.background else list(names)

    def class_category_ids(self, ids: list[int]) -> list[int | None]:
        """The dataset category of each output label (None: background)."""
        return [None, *ids] if self.background else list(ids)


_KINDS: dict[str, TaskKind] = {}


def register_task(kind: TaskKind) -> TaskKind:
    """Add a task's record (the name must be one of :data:`explorer.types.TASKS`)."""
    if kind.name not in TASKS or kind.name in _KINDS:
        raise ExplorerError(f"task {kind.name!r} is unknown or already registered")
    _KINDS[kind.name] = kind
    return kind


def task_kind(name: str) -> TaskKind:
    """The record of a task; raises ExplorerError listing the valid names."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ExplorerError(f"unknown task {name!r}; valid: {', '.join(_KINDS)}") from None


CLASSIFY = register_task(
    TaskKind(
        name="classify",
        noun="classifier",
        background=False,
        scores_per_image=True,
        quality_metric="val_acc",
        trusted_quality=0.90,
    )
)
SEGMENT = register_task(
    TaskKind(
        name="segment",
        noun="segmenter",
        background=True,
        scores_per_image=False,
        quality_metric="val_miou",
        trusted_quality=0.60,
    )
)
