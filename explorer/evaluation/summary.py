"""pycocotools' ``summarize``: the 12 numbers (10 for keypoints) and the lines it prints.

Each number is the mean of the entries > -1 of a slice of ``precision`` or ``recall``, taken
with the same numpy indexing as pycocotools (so the same summation order and the same value to
the last bit); -1 when the slice has none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from explorer.evaluation.params import EvalParams, EvaluationError

_LINE = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"


@dataclass(frozen=True)
class SummaryRow:
    """One summary number: AP or AR, at an IoU threshold (None: all), an area, a maxDets."""

    measure: Literal["AP", "AR"]
    iou: float | None
    area: str
    max_dets: int
    value: float
    line: str


# (measure, iou, area, which maxDets: an index into params.max_dets, or a fixed value)
Spec = tuple[Literal["AP", "AR"], float | None, str, tuple[str, int]]
DETECTION_SUMMARY: tuple[Spec, ...] = (
    ("AP", None, "all", ("value", 100)),  # pycocotools hard-codes 100 here (trap P18)
    ("AP", 0.5, "all", ("index", 2)),
    ("AP", 0.75, "all", ("index", 2)),
    ("AP", None, "small", ("index", 2)),
    ("AP", None, "medium", ("index", 2)),
    ("AP", None, "large", ("index", 2)),
    ("AR", None, "all", ("index", 0)),
    ("AR", None, "all", ("index", 1)),
    ("AR", None, "all", ("index", 2)),
    ("AR", None, "small", ("index", 2)),
    ("AR", None, "medium", ("index", 2)),
    ("AR", None, "large", ("index", 2)),
)
KEYPOINT_SUMMARY: tuple[Spec, ...] = tuple(
    (measure, iou, area, ("value", 20))
    for measure in ("AP", "AR")
    for iou, area in ((None, "all"), (0.5, "all"), (0.75, "all"), (None, "medium"), (None, "large"))
)


def _max_dets(params: EvalParams, which: tuple[str, int]) -> int:
    how, n = which
    if how == "value":
        return n
    if n >= len(params.max_dets):
        raise EvaluationError(
            f"the summary needs 3 maxDets values (pycocotools reads maxDets[{n}]); "
            f"got {list(params.max_dets)}"
        )
    return params.max_dets[n]


def _value(
    arrays: tuple[np.ndarray, np.ndarray], params: EvalParams, spec: Spec, max_dets: int
) -> float:
    measure, iou, area, _ = spec
    a = [i for i, label in enumerate(params.area_labels) if label == area]
    m = [i for i, md in enumerate(params.max_dets) if md == max_dets]
    s = arrays[0] if measure == "AP" else arrays[1]
    if iou is not None:
        s = s[np.where(iou == params.iou_thresholds)[0]]
    s = s[:, :, :, a, m] if measure == "AP" else s[:, :, a, m]
    return -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))


def summary_rows(
    precision: np.ndarray, recall: np.ndarray, params: EvalParams, specs: tuple[Spec, ...]
) -> list[SummaryRow]:
    """pycocotools' summary of ``precision`` and ``recall`` for ``params``: one row per spec
    (``DETECTION_SUMMARY`` or ``KEYPOINT_SUMMARY``, as the iou type's overlap says)."""
    thresholds = params.iou_thresholds
    rows = []
    for spec in specs:
        measure, iou, area, which = spec
        max_dets = _max_dets(params, which)
        value = _value((precision, recall), params, spec, max_dets)
        title = "Average Precision" if measure == "AP" else "Average Recall"
        iou_text = f"{thresholds[0]:0.2f}:{thresholds[-1]:0.2f}" if iou is None else f"{iou:0.2f}"
        line = _LINE.format(title, f"({measure})", iou_text, area, max_dets, value)
        rows.append(SummaryRow(measure, iou, area, max_dets, value, line))
    return rows
