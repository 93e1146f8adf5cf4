"""Validation that scores exactly what ``evaluate`` scores: the same objects, read and
preprocessed by the inference runner's own code, so a run's validation accuracy is the number
``python -m explorer evaluate`` gives for its checkpoint on the same split.

Inputs are kept as uint8 after the preprocessing's geometry (a quarter of the floats' memory)
and normalised batch by batch with the same :class:`~explorer.models.preprocess.Preprocess`.
Under ``torchrun`` each process scores its own share and the counts are summed: every object is
counted exactly once, whatever the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from explorer.coco import masks
from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.errors import ExplorerError
from explorer.evaluation.semantic import confusion_matrix, segmentation_scores
from explorer.inference.outputs import at_image_size
from explorer.inference.runner import (
    decoded_inputs,
    item_files,
    items_for_crops,
    items_for_images,
)
from explorer.models.outputs import logits
from explorer.models.preprocess import Preprocess
from explorer.training import distributed
from explorer.training.data import class_lut
from explorer.training.distributed import World
from explorer.training.events import Scores
from explorer.training.tasks import Split

# the inference runner's batches on a CPU: the same batches give the same floats
BATCH = 32
SEGMENT_BATCH = 2


@dataclass
class CropSet:
    """Validation crops as ``evaluate`` sees them: uint8 inputs (N, 3, S, S) and class rows."""

    inputs: torch.Tensor
    targets: torch.Tensor
    skipped: list[str]


def load_crop_set(
    split: Split, category_ids: list[int], preprocess: Preprocess, progress=None
) -> CropSet:
    """Every non-crowd object of the split's images whose category is a class (what
    ``evaluate`` scores), read like the inference runner reads it."""
    index = split.dataset.index
    class_of = {c: i for i, c in enumerate(category_ids)}
    anns = index.annotations
    row_of = dict(zip(anns["id"].tolist(), range(len(anns["id"])), strict=True))
    items, targets = [], []
    for it in items_for_crops(index, split.rows):
        category = int(anns["category_id"][row_of[it.annotation_id]])
        if category in class_of:
            items.append(it)
            targets.append(class_of[category])
    xs, kept, skipped = _read(split.dataset, items, preprocess, progress)
    if not xs:
        raise ExplorerError(f"{index.path}: no readable object crops to validate on")
    ys = [targets[n] for n in kept]
    return CropSet(torch.stack(xs), torch.tensor(ys), skipped)


def _read(
    dataset: Dataset, items: list, preprocess: Preprocess, progress
) -> tuple[list[torch.Tensor], list[int], list[str]]:
    """The items' uint8 inputs as the inference runner reads them (the preprocessing's
    geometry), which items they are, and why the others could not be read."""
    paths, sizes = item_files(dataset, items)
    skipped = [str(p) for p in paths if not isinstance(p, str)]
    readable = [n for n, p in enumerate(paths) if isinstance(p, str)]
    inputs = decoded_inputs(
        [items[n] for n in readable],
        [p for p in paths if isinstance(p, str)],
        [sizes[n] for n in readable],
        preprocess.geometry,
    )
    xs, kept = [], []
    for k, n in enumerate(readable):
        x, _ = inputs[k]
        if isinstance(x, str):
            skipped.append(x)
        else:
            xs.append(x)
            kept.append(n)
        if progress:
            progress(k + 1, len(readable))
    return xs, kept, skipped


@torch.inference_mode()
def score_crops(model, crops: CropSet, preprocess: Preprocess, device: str, world: World) -> Scores:
    """``val_loss`` and ``val_acc`` over every crop, this process scoring its share."""
    mine = torch.from_numpy(distributed.shard(world, len(crops.targets)))
    loss = correct = 0.0
    for k in range(0, len(mine), BATCH):
        idx = mine[k : k + BATCH]
        x = preprocess.normalise(crops.inputs[idx]).to(device)
        y = crops.targets[idx].to(device)
        out = model(x).float()
        loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    loss, correct = distributed.sum_all(world, [loss, correct], device)
    n = len(crops.targets)
    return {"val_loss": float(loss) / n, "val_acc": float(correct) / n}


@dataclass
class ImageSet:
    """Validation images as ``evaluate`` sees them: uint8 inputs after the preprocessing's
    geometry, their rows in the index (masks are painted at each image's own size when
    scored), and the map from dataset mask values to class rows."""

    inputs: torch.Tensor
    rows: list[int]
    index: CocoIndex
    lut: np.ndarray
    num_classes: int  # background and every category (a category's id may be no mask value)
    skipped: list[str]


def load_image_set(
    split: Split, category_ids: list[int], preprocess: Preprocess, progress=None
) -> ImageSet:
    """The split's images read like the inference runner reads them, scored in background
    plus ``category_ids`` (their masks' COCO values mapped to class rows by ``class_lut``)."""
    index = split.dataset.index
    items = items_for_images(index, split.rows)
    xs, kept, skipped = _read(split.dataset, items, preprocess, progress)
    if not xs:
        raise ExplorerError(f"{index.path}: no readable images to validate on")
    rows = [items[n].image_row for n in kept]
    lut = class_lut(category_ids)
    return ImageSet(torch.stack(xs), rows, index, lut, len(category_ids) + 1, skipped)


@torch.inference_mode()
def score_images(
    model, images: ImageSet, preprocess: Preprocess, device: str, world: World
) -> Scores:
    """``val_loss``, ``val_miou`` and ``val_pixel_acc`` at each image's own size (what
    ``evaluate`` scores), this process scoring its share."""
    n_classes = images.num_classes
    mine = distributed.shard(world, len(images.rows))
    conf = np.zeros((n_classes, n_classes), np.int64)
    loss = 0.0
    for k in range(0, len(mine), SEGMENT_BATCH):
        idx = mine[k : k + SEGMENT_BATCH]
        out = logits(model(preprocess.normalise(images.inputs[idx]).to(device))).float()
        for scores, i in zip(out, idx.tolist(), strict=True):
            row = images.rows[i]
            size = (int(images.index.images["width"][row]), int(images.index.images["height"][row]))
            full = at_image_size(scores, size)
            target = images.lut[masks.semantic_mask(images.index, row, "coco")[0]]
            truth = torch.from_numpy(target.astype(np.int64)).to(device)
            loss += float(
                F.cross_entropy(full[None], truth[None], ignore_index=255, reduction="sum")
            )
            conf += confusion_matrix(target, full.argmax(0).cpu().numpy(), n_classes)
    sums = distributed.sum_all(world, np.concatenate([[loss], conf.ravel()]), device)
    conf = sums[1:].reshape(n_classes, n_classes).astype(np.int64)
    s = segmentation_scores(conf)
    val_loss = float(sums[0]) / max(int(conf.sum()), 1)
    return {"val_loss": val_loss, "val_miou": s["miou"], "val_pixel_acc": s["pixel_acc"]}
