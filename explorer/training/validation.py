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
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer.coco.index import CocoIndex
from explorer.errors import ExplorerError
from explorer.inference.runner import decoded_inputs, item_files, items_for_crops
from explorer.models.preprocess import Preprocess
from explorer.training import distributed
from explorer.training.distributed import World

# the inference runner's batch on a CPU: the same batches give the same floats
BATCH = 32


@dataclass
class CropSet:
    """Validation crops as ``evaluate`` sees them: uint8 inputs (N, 3, S, S) and class rows."""

    inputs: torch.Tensor
    targets: torch.Tensor
    skipped: list[str]


def load_crop_set(
    index: CocoIndex,
    images_dir: Path,
    image_rows: np.ndarray,
    category_ids: list[int],
    preprocess: Preprocess,
    progress=None,
) -> CropSet:
    """Every non-crowd object of ``image_rows`` whose category is a class (what ``evaluate``
    scores), read like the inference runner reads it."""
    class_of = {c: i for i, c in enumerate(category_ids)}
    anns = index.annotations
    row_of = dict(zip(anns["id"].tolist(), range(len(anns["id"])), strict=True))
    items, targets = [], []
    for it in items_for_crops(index, image_rows):
        category = int(anns["category_id"][row_of[it.annotation_id]])
        if category in class_of:
            items.append(it)
            targets.append(class_of[category])
    paths, sizes = item_files(index, images_dir, items)
    skipped = [str(p) for p in paths if not isinstance(p, str)]
    readable = [n for n, p in enumerate(paths) if isinstance(p, str)]
    inputs = decoded_inputs(
        [items[n] for n in readable],
        [paths[n] for n in readable],
        [sizes[n] for n in readable],
        preprocess.geometry,
    )
    xs, ys = [], []
    for k, n in enumerate(readable):
        x, _ = inputs[k]
        if isinstance(x, str):
            skipped.append(x)
        else:
            xs.append(x)
            ys.append(targets[n])
        if progress:
            progress(k + 1, len(readable))
    if not xs:
        raise ExplorerError(f"{index.path}: no readable object crops to validate on")
    return CropSet(torch.stack(xs), torch.tensor(ys), skipped)


@torch.inference_mode()
def score_crops(
    model, crops: CropSet, preprocess: Preprocess, device: str, world: World
) -> dict[str, float]:
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
