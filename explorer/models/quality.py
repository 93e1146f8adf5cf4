"""A model's own measured quality, and how far its evidence is trusted.

A model trained here carries its validation score in its checkpoint (``best.pt``: the task's
:attr:`~explorer.models.tasks.TaskKind.quality_metric`, ``val_acc`` or ``val_miou``, on its
training run's validation images). Published weights and plain state_dict files were never
measured on the open dataset; untrained weights are random.

Trust is the share of a model's evidence that counts (:mod:`explorer.inference.mistakes` scales
its scores by it)::

    trust = min(1, quality / trusted_quality)    measured (the task's threshold, TaskKind)
    trust = 0                                    untrained (random weights say nothing)
    trust = 1                                    not measured (nothing to calibrate against)

so a segmenter at val mIoU 0.197 (threshold 0.60) counts a third: none of its doubts reaches more
than 0.33, while a model at or above its task's threshold is not changed at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from explorer.models.tasks import TaskKind, task_kind

Measurement = Literal["measured", "not measured", "untrained"]


@dataclass(frozen=True)
class Quality:
    """What is known of a model's quality.

    Attributes:
        task: the model's task (its kind holds the metric and the threshold).
        measurement: "measured" (``value`` holds the score), "not measured" or "untrained".
        value: the task's metric on the training run's validation images (NaN unless measured).
        epoch: the epoch the score was measured after (0 unless measured).
    """

    task: str
    measurement: Measurement
    value: float = math.nan
    epoch: int = 0

    @property
    def kind(self) -> TaskKind:
        return task_kind(self.task)

    @property
    def measured(self) -> bool:
        return self.measurement == "measured"

    @property
    def trust(self) -> float:
        """The share of this model's evidence that counts, 0..1 (the module's formula)."""
        if self.measurement == "untrained":
            return 0.0
        if not self.measured:
            return 1.0
        return float(min(1.0, max(0.0, self.value / self.kind.trusted_quality)))

    @property
    def weak(self) -> bool:
        """Measured below the task's threshold, or untrained: pages warn plainly."""
        return self.trust < 1.0

    def describe(self) -> str:
        """One line: the score and where it was measured, or why there is none."""
        metric = self.kind.quality_metric
        if self.measurement == "untrained":
            return "untrained (random weights): its verdicts mean nothing"
        if not self.measured:
            return f"{metric} not measured on this dataset (published weights or a plain file)"
        return f"{metric} {self.value:.3f} on its training run's validation images"

    def warning(self) -> str | None:
        """What a page says when the model is weak (None when it is not)."""
        if not self.weak:
            return None
        threshold = self.kind.trusted_quality
        if self.measurement == "untrained":
            return f"{self.kind.noun.capitalize()} {self.describe()}; mistake scores ignore it."
        return (
            f"Weak {self.kind.noun}: {self.describe()}, below {threshold:.2f}, the level this app "
            f"trusts a {self.kind.noun} at. Treat its results with care: mistake scores count "
            f"its evidence at {self.trust:.0%}."
        )


def not_measured(task: str) -> Quality:
    return Quality(task, "not measured")


def untrained(task: str) -> Quality:
    return Quality(task, "untrained")


def checkpoint_quality(task: str, checkpoint: dict[str, Any] | None) -> Quality:
    """The quality a COCO Explorer checkpoint records for its own weights: the run's best score
    when the checkpoint is the best epoch's (``best.pt``; a ``last.pt`` of that epoch too), else
    not measured (a ``last.pt`` after the best epoch, before any validation, or no checkpoint)."""
    ckpt = checkpoint or {}
    best, best_epoch, epoch = ckpt.get("best"), ckpt.get("best_epoch"), ckpt.get("epoch")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (best, epoch))
    if not numbers or not isinstance(best_epoch, int) or best_epoch < 0 or epoch != best_epoch:
        return not_measured(task)
    value = float(best)  # type: ignore[arg-type]
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return not_measured(task)
    return Quality(task, "measured", value, best_epoch)
