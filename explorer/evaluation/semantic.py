"""Semantic segmentation scores, computed like torchvision's segmentation reference (``utils.ConfusionMatrix``).

Rows of a confusion matrix are the truth, columns the prediction; pixels whose truth is the
ignore value (255) or outside ``0..n-1`` are left out.
"""

from __future__ import annotations

import numpy as np


def confusion_matrix(target: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """``(n, n)`` int64 counts of (truth, prediction) pixel pairs."""
    t = np.asarray(target).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    keep = (t >= 0) & (t < n)
    return np.bincount(n * t[keep] + p[keep], minlength=n * n).reshape(n, n)


def segmentation_scores(conf: np.ndarray) -> dict:
    """Pixel accuracy, per-class IoU and accuracy, mean IoU (classes absent from both truth and
    prediction have no IoU: NaN, left out of the mean)."""
    conf = np.asarray(conf, dtype=np.float64)
    diag = np.diag(conf)
    rows, cols = conf.sum(1), conf.sum(0)
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
