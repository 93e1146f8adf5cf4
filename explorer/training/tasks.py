"""Training tasks: one registered object per task, looked up from the model record's ``task``
(as timm's ``timm/task/``). A task knows its data (training tensors and the validation set
``evaluate`` scores), its step's loss, its evaluation and metric (with its direction), its
learning-rate schedule and weight decay, its default settings and how inference must read images
for the models it trains. :class:`~explorer.training.trainer.Session` is the loop only.

No torch at import time: the Train page reads :data:`TrainTask.defaults` through
:mod:`explorer.training.config` without it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference.options import RunOptions
from explorer.models.tasks import CLASSIFY, SEGMENT, TaskKind, task_kind
from explorer.training.events import ScoreName, Scores
from explorer.training.schedules import cosine_lr, poly_lr
from explorer.training.settings import TrainSettings

if TYPE_CHECKING:
    import torch

    from explorer.models.preprocess import Preprocess
    from explorer.training.data import Tensors
    from explorer.training.distributed import World

Schedule = Callable[[float, int, int, int], float]
"""``schedule(base_lr, step, total_steps, warmup_steps)`` → the step's learning rate."""


@dataclass(frozen=True)
class Metric:
    """The validation score that picks ``best.pt``, and which way is better."""

    name: ScoreName
    higher_is_better: bool = True

    def improves(self, score: float, best: float, best_epoch: int) -> bool:
        """Whether ``score`` beats ``best`` (any score does before a first best epoch)."""
        if best_epoch < 0:
            return True
        return score > best if self.higher_is_better else score < best


@dataclass(frozen=True)
class Split:
    """One side of a run's data: a dataset and the image rows it uses."""

    dataset: Dataset
    rows: np.ndarray

    @property
    def images(self) -> Path:
        """The image folder (a run always has one)."""
        assert self.dataset.images is not None
        return self.dataset.images


@dataclass(frozen=True)
class StepInputs:
    """What one optimiser step reads besides the model."""

    data: Tensors
    idx: torch.Tensor
    generator: torch.Generator
    class_weights: torch.Tensor | None
    device: str
    num_classes: int


class TrainTask(Protocol):
    """What the training loop asks of a task (read-only: the tasks are frozen values)."""

    @property
    def kind(self) -> TaskKind: ...
    @property
    def metric(self) -> Metric: ...
    @property
    def defaults(self) -> Mapping[str, Any]:
        """The settings a run takes when neither it nor its preset sets them."""
        ...

    @property
    def weight_decay(self) -> float: ...
    @property
    def schedule(self) -> Schedule: ...
    @property
    def examples(self) -> str:
        """What one training example is, in progress lines ("crops", "images")."""
        ...

    def preprocess_record(self, cfg: TrainSettings) -> dict[str, Any]:
        """How inference must read images for a model of this run (saved in checkpoints)."""
        ...

    def load_train(
        self, cfg: TrainSettings, split: Split, category_ids: list[int], progress
    ) -> Tensors:
        """The training examples, decoded once."""
        ...

    def load_val(
        self, split: Split, category_ids: list[int], preprocess: Preprocess, progress
    ) -> Any:
        """Exactly what ``evaluate`` scores, read as the inference runner reads it."""
        ...

    def loss(self, net: torch.nn.Module, cfg: TrainSettings, step: StepInputs) -> torch.Tensor:
        """The loss of one batch (augmented here), in fp32."""
        ...

    def evaluate(
        self,
        model: torch.nn.Module,
        val_set: Any,
        preprocess: Preprocess,
        device: str,
        world: World,
    ) -> Scores:
        """The validation loss and scores (the metric among them), each process its share."""
        ...


CROP_LOAD = 256
"""Side of the stored crops for 227/224 px inputs: training takes random crops of them,
validation the centre; smaller inputs keep the same 1.14 ratio (:func:`crop_load`)."""


def crop_load(image_size: int) -> int:
    """Side the crops are decoded to for a classifier input of ``image_size``."""
    return CROP_LOAD if image_size > 200 else int(image_size * 1.14)


def _channels_last(x: torch.Tensor, device: str) -> torch.Tensor:
    import torch

    # convolutions run faster on NHWC tensors on CPUs and GPUs alike (bench/bench_train.py)
    return x.to(device, memory_format=torch.channels_last)


@dataclass(frozen=True)
class Classification:
    """Object crops → one of the dataset's categories; cross-entropy with label smoothing,
    cosine schedule, accuracy on exactly the crops ``evaluate`` scores."""

    kind: TaskKind = CLASSIFY
    metric: Metric = Metric("val_acc")
    defaults: Mapping[str, Any] = field(
        default_factory=lambda: {"epochs": 30, "batch_size": 64, "lr": 3e-4, "image_size": 227}
    )
    weight_decay: float = 0.05
    schedule: Schedule = cosine_lr
    examples: str = "crops"

    def preprocess_record(self, cfg: TrainSettings) -> dict[str, Any]:
        return {"resize": crop_load(cfg.image_size), "crop": cfg.image_size}

    def load_train(
        self, cfg: TrainSettings, split: Split, category_ids: list[int], progress
    ) -> Tensors:
        from explorer.training import data

        options = RunOptions(workers=cfg.workers, progress=progress)
        return data.load_crops(
            split, category_ids, crop_load(cfg.image_size), cfg.min_area, options
        )

    def load_val(self, split: Split, category_ids: list[int], preprocess, progress):
        from explorer.training import validation

        return validation.load_crop_set(split, category_ids, preprocess, progress)

    def loss(self, net, cfg: TrainSettings, step: StepInputs):
        import torch
        import torch.nn.functional as F

        from explorer.training import data

        crops = data.augment_crops(step.data.images[step.idx], cfg.image_size, step.generator)
        x = data.normalise(crops)
        # AMP on CUDA (bf16: no scaler)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=step.device.startswith("cuda")):
            out = net(_channels_last(x, step.device))
        return F.cross_entropy(
            out.float(),
            step.data.targets[step.idx].to(step.device),
            weight=step.class_weights,
            label_smoothing=0.1,
        )

    def evaluate(self, model, val_set, preprocess, device, world):
        from explorer.training import validation

        return validation.score_crops(model, val_set, preprocess, device, world)


@dataclass(frozen=True)
class Segmentation:
    """Whole images → a class per pixel (0 background, 255 ignored where annotations
    overlap); cross-entropy (plus Dice on request), poly schedule, mIoU over the validation
    images as torchvision's segmentation reference computes it."""

    kind: TaskKind = SEGMENT
    metric: Metric = Metric("val_miou")
    defaults: Mapping[str, Any] = field(
        default_factory=lambda: {
            "epochs": 60,
            "batch_size": 16,
            "lr": 1e-3,
            "image_size": 256,
            "encoder": "resnet34",
        }
    )
    weight_decay: float = 1e-4
    schedule: Schedule = poly_lr
    examples: str = "images"

    def preprocess_record(self, cfg: TrainSettings) -> dict[str, Any]:
        return {"resize": cfg.image_size, "square": True}

    def load_train(
        self, cfg: TrainSettings, split: Split, category_ids: list[int], progress
    ) -> Tensors:
        from explorer.training import data

        options = RunOptions(workers=cfg.workers, progress=progress)
        return data.load_segmentation(split, category_ids, cfg.image_size, options)

    def load_val(self, split: Split, category_ids: list[int], preprocess, progress):
        from explorer.training import validation

        return validation.load_image_set(split, category_ids, preprocess, progress)

    def loss(self, net, cfg: TrainSettings, step: StepInputs):
        import torch
        import torch.nn.functional as F

        from explorer.models.outputs import logits
        from explorer.training import data
        from explorer.types import IGNORE_LABEL

        x, y = data.augment_segmentation(
            step.data.images[step.idx], step.data.targets[step.idx].clone(), step.generator
        )
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=step.device.startswith("cuda")):
            out = net(_channels_last(data.normalise(x), step.device))
        out = logits(out).float()  # losses in fp32
        y = y.to(step.device)
        loss = F.cross_entropy(out, y, weight=step.class_weights, ignore_index=IGNORE_LABEL)
        if cfg.dice:
            loss = loss + dice_loss(out, y, step.num_classes)
        return loss

    def evaluate(self, model, val_set, preprocess, device, world):
        from explorer.training import validation

        return validation.score_images(model, val_set, preprocess, device, world)


def dice_loss(scores, target, n: int):
    """Soft multiclass Dice on the non-ignored pixels (computed in fp32)."""
    import torch
    import torch.nn.functional as F

    from explorer.types import IGNORE_LABEL

    keep = (target != IGNORE_LABEL).unsqueeze(1).float()
    prob = torch.softmax(scores.float(), 1) * keep
    onehot = F.one_hot(target.clamp(max=n - 1), n).permute(0, 3, 1, 2).float() * keep
    inter = (prob * onehot).sum((0, 2, 3))
    union = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (union + 1)).mean()


_TASKS: dict[str, TrainTask] = {}


def register_train_task(task: TrainTask) -> TrainTask:
    """Add a task's training object under its :class:`~explorer.models.tasks.TaskKind` name."""
    _TASKS[task.kind.name] = task
    return task


def train_task(name: str) -> TrainTask:
    """The training object of a task (as a model record names it); raises ExplorerError
    listing the valid tasks."""
    kind = task_kind(name)
    if kind.name not in _TASKS:
        raise ExplorerError(f"{kind.noun}s cannot be trained here; trainable: {', '.join(_TASKS)}")
    return _TASKS[kind.name]


register_train_task(Classification())
register_train_task(Segmentation())
