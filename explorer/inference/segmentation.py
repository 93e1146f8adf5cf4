"""A segmenter's predictions as COCO results, and its evaluation against the semantic truth.

Both read predictions through the cache (:func:`explorer.inference.cache.predict`).
:func:`eval_space` says how predicted labels meet the truth; :func:`evaluate_segmentation` scores
them like torchvision's segmentation reference (see :mod:`explorer.evaluation.semantic`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from explorer.coco import masks as coco_masks
from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.coco.labels import VOC_NAMES, voc_label_of, voc_labels, without_counterpart
from explorer.evaluation.semantic import confusion_matrix, segmentation_scores
from explorer.inference.cache import predict
from explorer.inference.options import DEFAULT_OPTIONS, RunOptions
from explorer.inference.runner import items_for_images
from explorer.models.weights import LoadedModel
from explorer.types import MaskLabels


class CocoResult(TypedDict):
    """One entry of a COCO results file (``pycocotools.COCO.loadRes`` format)."""

    image_id: int
    category_id: int
    segmentation: dict  # compressed RLE: {"size": [h, w], "counts": str}
    score: float


class SegmentationEvaluation(TypedDict):
    """``evaluate --json`` of a segmenter."""

    pixel_acc: float  # NaN when no pixel was scored
    miou: float
    per_class_iou: dict[str, float | None]  # None: the class is in neither truth nor prediction
    images: int  # images predicted (unreadable ones are left out)
    labels: MaskLabels
    model: str
    weights: str
    untrained: bool
    classes: list[str]  # the confusion matrix's rows (truth) and columns (prediction)
    confusion: list[list[int]]
    no_counterpart: list[str]  # dataset categories the evaluation cannot score (see EvalSpace)


@dataclass(frozen=True, eq=False)
class EvalSpace:
    """How predictions meet the truth.

    ``space`` is ``voc`` (the 21 VOC labels, as torchvision's reference: other categories dropped,
    overlaps ignored) or ``coco`` (the dataset's category ids, 0 = background); ``to_eval[label]``
    is a model label's value in that space (unmappable labels become 0); values run ``0..n-1``
    and ``names[v]`` names value ``v`` (None where no category has it). ``no_counterpart`` names
    the dataset categories that cannot be scored: in ``voc``, those with no VOC class of the same
    name (their pixels count as background, as in torchvision's reference); in ``coco``, those
    the model has no label for.
    """

    space: MaskLabels
    to_eval: np.ndarray
    n: int
    names: list[str | None]
    no_counterpart: list[str]
    scorable: int  # dataset categories that can be scored; 0: nothing but background to score


def coco_results(
    model: LoadedModel, index: CocoIndex, image_row: int, labels: np.ndarray, scores: dict
) -> list[CocoResult]:
    """COCO results for one image: one per predicted label that maps to a dataset category, mask
    as compressed RLE at the original size."""
    from pycocotools import mask as mask_utils

    mapping = model.category_of_label(index.categories)
    image_id = int(index.images["id"][image_row])
    out: list[CocoResult] = []
    for label in np.unique(labels).tolist():
        cat = mapping[label] if label < len(mapping) else None
        if cat is None:
            continue
        rle = mask_utils.encode(np.asfortranarray((labels == label).astype(np.uint8)))
        out.append(
            {
                "image_id": image_id,
                "category_id": int(cat),
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": rle["counts"].decode(),
                },
                "score": round(float(scores.get(label, 0.0)), 5),
            }
        )
    return out


def eval_space(model: LoadedModel, index: CocoIndex, labels: MaskLabels | None = None) -> EvalSpace:
    """The :class:`EvalSpace` of ``labels`` (default: ``voc`` for a VOC model, else ``coco``)."""
    space: MaskLabels = labels or ("voc" if model.label_space == "voc" else "coco")
    cats = index.categories
    mapping = model.category_of_label(cats)
    if space == "voc":
        missing = without_counterpart(cats, voc_labels(cats))
        to_voc = _voc_values(model, index, mapping)
        return EvalSpace("voc", to_voc, 21, list(VOC_NAMES), missing, len(cats) - len(missing))
    to_eval = np.zeros(256, np.int64)
    for i, cid in enumerate(mapping):
        to_eval[i] = cid if cid is not None else 0
    n = max([c["id"] for c in index.categories], default=0) + 1
    names: list[str | None] = [None] * n
    names[0] = "background"
    for c in index.categories:
        names[c["id"]] = c["name"]
    missing = without_counterpart(cats, [m for m in mapping if m is not None])
    return EvalSpace("coco", to_eval, n, names, missing, len(cats) - len(missing))


def _voc_values(model: LoadedModel, index: CocoIndex, mapping: list) -> np.ndarray:
    to_eval = np.zeros(256, np.int64)
    if model.label_space == "voc":
        to_eval[:21] = np.arange(21)
        return to_eval
    # a dataset model: its labels -> dataset categories -> VOC labels of the same name
    names_by_id = {c["id"]: c["name"] for c in index.categories}
    for i, cid in enumerate(mapping):
        to_eval[i] = voc_label_of(names_by_id[cid]) if cid in names_by_id else 0
    return to_eval


def evaluate_segmentation(
    model: LoadedModel,
    dataset: Dataset,
    image_rows,
    labels: MaskLabels | None = None,
    options: RunOptions = DEFAULT_OPTIONS,
) -> SegmentationEvaluation:
    """Pixel accuracy, mean IoU, per-class IoU and the confusion matrix over ``image_rows``
    (in the :func:`eval_space` of ``labels``); predictions are compared at the original image
    size."""
    index = dataset.index
    ev = eval_space(model, index, labels)
    conf = np.zeros((ev.n, ev.n), np.int64)
    count = 0
    for it, out, _err in predict(model, dataset, items_for_images(index, image_rows), options):
        if out is None:
            continue
        target, _ = coco_masks.semantic_mask(index, it.image_row, ev.space)
        conf += confusion_matrix(target, ev.to_eval[out[0]], ev.n)
        count += 1
    s = segmentation_scores(conf)
    named = {v: name for v, name in enumerate(ev.names) if name is not None}
    present = list(named)
    return {
        "pixel_acc": s["pixel_acc"],
        "miou": s["miou"],
        "per_class_iou": {name: _num(s["per_class_iou"][v]) for v, name in named.items()},
        "images": count,
        "labels": ev.space,
        "model": model.name,
        "weights": model.weights_label,
        "untrained": model.untrained,
        "classes": list(named.values()),
        "confusion": conf[np.ix_(present, present)].tolist(),
        "no_counterpart": ev.no_counterpart,
    }


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)
