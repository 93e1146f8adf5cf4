"""Semantic segmentation scores, computed like torchvision's segmentation reference
(``utils.ConfusionMatrix``), and a folder of mask PNGs scored with them.

Rows of a confusion matrix are the truth, columns the prediction; pixels whose truth is the
ignore value (255) or outside ``0..n-1`` are left out. A matrix may have more columns than
rows: the extra columns are predictions that name no class (a mask's unlabelled pixels), wrong
wherever they fall and never a class of their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TypedDict

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.predictions.semantic import MaskFolder, MaskSkipped, read_mask
from explorer.types import MaskLabels


def confusion_matrix(
    target: np.ndarray, pred: np.ndarray, n: int, columns: int | None = None
) -> np.ndarray:
    """``(n, columns)`` int64 counts of (truth, prediction) pixel pairs (``columns``: ``n``
    unless told; predictions must lie in ``0..columns-1``)."""
    m = n if columns is None else columns
    t = np.asarray(target).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    keep = (t >= 0) & (t < n)
    return np.bincount(m * t[keep] + p[keep], minlength=n * m).reshape(n, m)


def segmentation_scores(conf: np.ndarray) -> dict:
    """Pixel accuracy, per-class IoU and accuracy, mean IoU (classes absent from both truth and
    prediction have no IoU: NaN, left out of the mean)."""
    conf = np.asarray(conf, dtype=np.float64)
    n = conf.shape[0]
    diag = np.diag(conf)
    rows, cols = conf.sum(1), conf.sum(0)[:n]
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = diag / (rows + cols - diag)
        acc = diag / rows
    total = conf.sum()
    return {
        "pixel_acc": float(diag.sum() / total) if total else float("nan"),
        "per_class_iou": iou,
        "per_class_acc": acc,
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
    }


class ClassRow(TypedDict):
    """One class of a mask evaluation (``iou``/``accuracy`` None where undefined)."""

    value: int  # the class's value in the evaluation's space (a category id for ``coco``)
    name: str
    iou: float | None
    accuracy: float | None  # of its truth pixels, the share predicted as it (its recall)
    truth_pixels: int
    predicted_pixels: int
    unlabelled_pixels: int  # of its truth pixels, those the prediction left unlabelled


class MaskEvaluation(TypedDict):
    """``eval-results --json`` of a folder of semantic-mask PNGs."""

    kind: str
    labels: MaskLabels
    pixel_acc: float  # NaN when no pixel was scored
    miou: float
    per_class: list[ClassRow]  # the classes some category has, background first
    per_class_iou: dict[str, float | None]  # as ``evaluate --json``
    classes: list[str]  # the confusion matrix's rows (truth) and columns (prediction)
    confusion: list[list[int]]
    images: int  # images scored
    not_predicted: int  # dataset images without a PNG: left out, not counted wrong
    unmatched: int  # PNGs named after no image of the dataset
    skipped: int  # PNGs that could not be scored
    skipped_reasons: dict[str, int]


Progress = Callable[[int, int], None]


def evaluate_masks(
    index: CocoIndex, masks: MaskFolder, progress: Progress | None = None
) -> MaskEvaluation:
    """Pixel accuracy, mIoU, per-class IoU and the confusion matrix of the folder's PNGs against
    the dataset's semantic truth in the folder's label set (the scores ``evaluate`` gives a
    segmenter); ``progress(done, total)`` is called as images are scored."""
    space = masks.space
    conf = np.zeros((space.n, space.n + 1), np.int64)
    skipped: Counter[str] = Counter()
    total = len(masks.image_rows)
    step = max(1, total // 200)
    for k, row in enumerate(masks.image_rows.tolist()):
        try:
            predicted = read_mask(masks, index, k)
            conf += confusion_matrix(space.truth(index, row), predicted, space.n, space.n + 1)
        except MaskSkipped as e:
            skipped[e.reason] += 1
        if progress is not None and ((k + 1) % step == 0 or k + 1 == total):
            progress(k + 1, total)
    return _mask_evaluation(masks, conf, skipped)


def _number(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def _mask_evaluation(masks: MaskFolder, conf: np.ndarray, skipped: Counter[str]) -> MaskEvaluation:
    space = masks.space
    s = segmentation_scores(conf)
    named = [v for v, name in enumerate(space.names) if name is not None]
    truth, predicted = conf.sum(1), conf.sum(0)
    rows: list[ClassRow] = [
        {
            "value": v,
            "name": str(space.names[v]),
            "iou": _number(s["per_class_iou"][v]),
            "accuracy": _number(s["per_class_acc"][v]),
            "truth_pixels": int(truth[v]),
            "predicted_pixels": int(predicted[v]),
            "unlabelled_pixels": int(conf[v, space.n]),
        }
        for v in named
    ]
    return {
        "kind": "semantic masks",
        "labels": space.labels,
        "pixel_acc": s["pixel_acc"],
        "miou": s["miou"],
        "per_class": rows,
        "per_class_iou": {r["name"]: r["iou"] for r in rows},
        "classes": [r["name"] for r in rows],
        "confusion": conf[np.ix_(named, named)].tolist(),
        "images": int(len(masks.image_rows) - skipped.total()),
        "not_predicted": masks.not_predicted,
        "unmatched": masks.unmatched,
        "skipped": skipped.total(),
        "skipped_reasons": dict(skipped),
    }


def _skipped_text(reasons: dict[str, int]) -> str:
    if not reasons:
        return "no PNG skipped"
    listed = ", ".join(f"{n:,} {why}" for why, n in sorted(reasons.items()))
    return f"{sum(reasons.values()):,} PNGs skipped ({listed})"


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def masks_text(evaluation: MaskEvaluation, seconds: float) -> str:
    """What ``eval-results`` prints for a folder of masks: its counts, pixel accuracy and mIoU,
    then a row per class."""
    e = evaluation
    head = (
        f"semantic masks ({e['labels']} labels): {e['images']:,} images scored, "
        f"{e['not_predicted']:,} not predicted (no PNG: left out), {e['unmatched']:,} PNGs "
        f"for no image, {_skipped_text(e['skipped_reasons'])} · {seconds:.2f} s"
    )
    table = [
        "IoU per class (-: the class is in neither truth nor prediction; unlabelled: truth "
        "pixels the prediction left at the overlap value, counted wrong)",
        f"{'value':>5}  {'class':<20} {'IoU':>6} {'acc':>6} {'truth px':>12} "
        f"{'predicted px':>13} {'unlabelled':>11}",
        *(
            f"{r['value']:>5}  {r['name'][:20]:<20} {_share(r['iou']):>6} "
            f"{_share(r['accuracy']):>6} {r['truth_pixels']:>12,} {r['predicted_pixels']:>13,} "
            f"{r['unlabelled_pixels']:>11,}"
            for r in e["per_class"]
        ),
    ]
    scores = f"pixel accuracy {e['pixel_acc']:.4f}   mIoU {e['miou']:.4f}"
    return "\n".join([head, scores, "", *table])
