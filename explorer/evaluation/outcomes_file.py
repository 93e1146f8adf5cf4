"""Every object's outcome as one Parquet table: ``eval-results --out``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.evaluation.cocoeval import Evaluation
from explorer.evaluation.report import detection_outcomes, ground_truth_outcomes
from explorer.paths import atomic_file

if TYPE_CHECKING:
    from explorer.predictions.results import Detections


def outcomes_table(
    evaluation: Evaluation, index: CocoIndex, detections: Detections, iou: float
) -> dict[str, np.ndarray]:
    """Detections then annotations, one row each: ``side`` (detection / ground_truth), image,
    category, annotation id, results row, score (NaN for annotations), outcome, IoU."""
    dt = detection_outcomes(evaluation, index, detections, iou)
    gt = ground_truth_outcomes(evaluation, index, iou)
    n_dt, n_gt = len(dt["outcome"]), len(gt["outcome"])
    return {
        "side": np.array(["detection"] * n_dt + ["ground_truth"] * n_gt, dtype=object),
        "image_id": np.concatenate([dt["image_id"], gt["image_id"]]),
        "category_id": np.concatenate([dt["category_id"], gt["category_id"]]),
        "annotation_id": np.concatenate([dt["annotation_id"], gt["annotation_id"]]),
        "result_row": np.concatenate([dt["result_row"], gt["result_row"]]),
        "score": np.concatenate([dt["score"], np.full(n_gt, np.nan)]),
        "outcome": np.concatenate([dt["outcome"], gt["outcome"]]),
        "iou": np.concatenate([dt["iou"], gt["iou"]]),
    }


def write_outcomes(
    path: str | Path, evaluation: Evaluation, index: CocoIndex, detections: Detections, iou: float
) -> Path:
    """Write :func:`outcomes_table` to ``path`` (Parquet, written atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(outcomes_table(evaluation, index, detections, iou))
    path = Path(path)
    with atomic_file(path) as out:
        pq.write_table(table, out)
    return path
