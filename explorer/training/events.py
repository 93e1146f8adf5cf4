"""What a training run reports while it runs: typed events for the CLI's progress bar and the
app's job queue, and the record of an epoch (one ``metrics.jsonl`` line).

No torch here: the Train page imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict, TypeGuard


class StepRecord(TypedDict):
    """One ``metrics.jsonl`` line per optimiser step, on disk as soon as the step is done."""

    kind: Literal["step"]
    epoch: float  # fractional: 1.5 is half way through the second epoch
    step: int
    train_loss: float
    lr: float
    images_per_s: float
    time: float


class Scores(TypedDict):
    """A validation pass's numbers: every task reports ``val_loss``; classifiers ``val_acc``,
    segmenters ``val_miou`` and ``val_pixel_acc``."""

    val_loss: float
    val_acc: NotRequired[float]
    val_miou: NotRequired[float]
    val_pixel_acc: NotRequired[float]


ScoreName = Literal["val_loss", "val_acc", "val_miou", "val_pixel_acc"]
"""A key of :class:`Scores`: what a task's metric can be."""


class EpochRecord(Scores):
    """One ``metrics.jsonl`` line per epoch: the epoch's training numbers and its
    :class:`Scores`."""

    kind: Literal["epoch"]
    epoch: int
    step: int
    train_loss: float
    lr: float
    seconds: float
    images_per_s: float
    elapsed: float
    time: float


def is_epoch_record(line: dict) -> TypeGuard[EpochRecord]:
    """Whether a ``metrics.jsonl`` line (as read back) is an epoch's record, not a step's."""
    return line.get("kind") == "epoch"


@dataclass(frozen=True)
class Loading:
    """Images or crops read so far, before the first epoch."""

    run: str
    what: str  # "training crops", "validation images", ...
    done: int
    total: int

    @property
    def phase(self) -> str:
        return f"loading {self.what}"


@dataclass(frozen=True)
class Preparing:
    """A phase before the first step that shows no count: building the model, the first
    steps (allocations, kernel choice)."""

    run: str
    what: str

    @property
    def phase(self) -> str:
        return self.what


@dataclass(frozen=True)
class Step:
    """One optimiser step done (``epoch`` and ``batch`` count from 1)."""

    run: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float

    phase = "train"


@dataclass(frozen=True)
class EpochEnd:
    """An epoch validated and checkpointed; ``epochs`` is the plan after it, ``note`` says why
    the time budget shortened the plan ("" when it did not)."""

    run: str
    epoch: int
    epochs: int
    record: EpochRecord
    note: str = ""

    phase = "epoch"


Event = Preparing | Loading | Step | EpochEnd
