"""Two predictions files scored on one dataset, side by side: AP per category of both and the
images that got better or worse (their true positives at a score threshold of each file)."""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from explorer.evaluation.cocoeval import Evaluation
from explorer.evaluation.report import ImageCounts


class CategoryChange(TypedDict):
    """Per category of either evaluation (ids ascending): AP@[.50:.95] of A and of B (-1: no
    ground truth), and B's minus A's (NaN where either has none)."""

    category_id: np.ndarray
    ap_a: np.ndarray
    ap_b: np.ndarray
    change: np.ndarray


def _on(ids: np.ndarray, own_ids: np.ndarray, values: np.ndarray, missing: float) -> np.ndarray:
    """``values`` (one per ``own_ids``) placed on ``ids`` (a sorted superset)."""
    out = np.full(len(ids), missing, dtype=np.result_type(values, type(missing)))
    out[np.searchsorted(ids, own_ids)] = values
    return out


def category_changes(a: Evaluation, b: Evaluation) -> CategoryChange:
    """:class:`CategoryChange` of two evaluations of one dataset."""
    ids = np.union1d(a.category_ids, b.category_ids)
    ap_a = _on(ids, a.category_ids, a.category_ap(), -1.0)
    ap_b = _on(ids, b.category_ids, b.category_ap(), -1.0)
    both = (ap_a > -1) & (ap_b > -1)
    return CategoryChange(
        category_id=ids, ap_a=ap_a, ap_b=ap_b, change=np.where(both, ap_b - ap_a, np.nan)
    )


class ImageChange(TypedDict):
    """Per image of either count (ids ascending): true and false positives of A and of B, the
    objects of the image, and B's true positives minus A's (its gain)."""

    image_id: np.ndarray
    tp_a: np.ndarray
    tp_b: np.ndarray
    fp_a: np.ndarray
    fp_b: np.ndarray
    objects: np.ndarray
    gain: np.ndarray


def image_changes(a: ImageCounts, b: ImageCounts) -> ImageChange:
    """:class:`ImageChange` of the per-image counts of two evaluations (each at its own score
    threshold: see ``report.image_counts``)."""
    ids = np.union1d(a["image_id"], b["image_id"])
    tp_a = _on(ids, a["image_id"], a["true_positives"], 0)
    tp_b = _on(ids, b["image_id"], b["true_positives"], 0)
    objects = np.maximum(
        _on(ids, a["image_id"], a["true_positives"] + a["false_negatives"], 0),
        _on(ids, b["image_id"], b["true_positives"] + b["false_negatives"], 0),
    )
    return ImageChange(
        image_id=ids,
        tp_a=tp_a,
        tp_b=tp_b,
        fp_a=_on(ids, a["image_id"], a["false_positives"], 0),
        fp_b=_on(ids, b["image_id"], b["false_positives"], 0),
        objects=objects,
        gain=tp_b - tp_a,
    )


def most_changed(changes: ImageChange, count: int, better: bool) -> np.ndarray:
    """The positions of the ``count`` images that gained (``better``) or lost the most true
    positives from A to B, fewer false positives breaking ties (then the image id); only
    images that changed."""
    gain = changes["gain"] if better else -changes["gain"]
    fewer_fp = changes["fp_a"] - changes["fp_b"] if better else changes["fp_b"] - changes["fp_a"]
    changed = (gain > 0) | ((gain == 0) & (fewer_fp > 0))
    order = np.lexsort((changes["image_id"], -fewer_fp, -gain))
    return order[changed[order]][:count]
