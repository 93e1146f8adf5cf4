"""What each detection and each object came to at a score threshold (COCO's matching at one IoU
threshold, 0.5 unless asked), image by image: how many errors an image holds, the images holding
one kind of error, and one image's matches as a list. What Browse draws, filters and sorts by.

Keeping only the detections that score at least the threshold keeps their matches (COCO matches
greedily by score: see :func:`explorer.evaluation.report.counts_at`), so a kept detection's
outcome is the evaluation's: TP (it found an object), FP (it found none), ignored (it found a
crowd). An object (crowds left out: they are ignored) is missed, FN, when no kept detection found
it. Every count here is a ``np.bincount`` over these columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.evaluation import _kernels
from explorer.evaluation.cocoeval import Evaluation
from explorer.evaluation.errors import CAUSES, ErrorAnalysis
from explorer.evaluation.report import matched_iou, threshold_index

if TYPE_CHECKING:
    from explorer.predictions.results import Detections

Outcome = Literal["TP", "FP", "FN", "ignored"]
OUTCOMES: tuple[Outcome, ...] = ("TP", "FP", "FN", "ignored")
TP, FP, FN, IGNORED = range(4)  # the codes of the columns below: positions in OUTCOMES
_BY_STATE = np.full(3, FP, np.int8)  # _kernels' detection states -> the codes above
_BY_STATE[[_kernels.TRUE_POSITIVE, _kernels.IGNORED]] = TP, IGNORED


@dataclass(frozen=True)
class Outcomes:
    """The outcome of every evaluated detection and object when only detections scoring at least
    ``min_score`` are kept, and each image's errors.

    Attributes:
        evaluation: what was matched; ``iou`` the IoU threshold read from it.
        kept: per evaluated detection (``layout.dt_rows`` order): its score reaches the threshold.
        detection: per evaluated detection, its code (``TP``, ``FP`` or ``IGNORED``; a dropped
            detection keeps the code it had, ``kept`` says it is not counted).
        object: per evaluated annotation (``layout.gt_rows`` order): ``TP``, ``FN`` or
            ``IGNORED``.
        false_positives, false_negatives: per evaluated image (``layout.image_ids`` order):
            kept detections that found nothing, objects no kept detection found.
    """

    evaluation: Evaluation
    min_score: float
    iou: float
    kept: np.ndarray
    detection: np.ndarray
    object: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray

    def errors_of(self, image_ids: np.ndarray) -> np.ndarray:
        """FP + FN of each of ``image_ids`` (0 for an image the evaluation does not hold)."""
        evaluated = self.evaluation.layout.image_ids
        ids = np.asarray(image_ids, np.int64)
        at = np.minimum(np.searchsorted(evaluated, ids), max(len(evaluated) - 1, 0))
        held = (evaluated[at] == ids) if len(evaluated) else np.zeros(len(ids), bool)
        errors = self.false_positives + self.false_negatives
        return np.where(held, errors[at] if len(evaluated) else 0, 0)


def outcomes_at(evaluation: Evaluation, min_score: float, iou: float = 0.5) -> Outcomes:
    """:class:`Outcomes` at ``min_score`` and the IoU threshold ``iou`` (all areas)."""
    lay, t = evaluation.layout, threshold_index(evaluation, iou)
    n_img = len(lay.image_ids)
    kept = lay.dt_score >= min_score
    detection = _BY_STATE[evaluation.state[0, t]]
    match = evaluation.gt_match[t]
    found = np.zeros(len(match), bool)
    found[match >= 0] = kept[match[match >= 0]]
    ignored = evaluation.gt_ignored[0]
    obj = np.where(ignored, IGNORED, np.where(found, TP, FN)).astype(np.int8)
    return Outcomes(
        evaluation=evaluation,
        min_score=float(min_score),
        iou=float(evaluation.params.iou_thresholds[t]),
        kept=kept,
        detection=detection,
        object=obj,
        false_positives=np.bincount(lay.dt_image[kept & (detection == FP)], minlength=n_img),
        false_negatives=np.bincount(lay.gt_image[obj == FN], minlength=n_img),
    )


def images_missing(outcomes: Outcomes, category_id: int) -> np.ndarray:
    """The ids of the images where an object of ``category_id`` was missed (sorted)."""
    lay = outcomes.evaluation.layout
    of_category = lay.category_ids[lay.gt_category] == category_id
    return np.unique(lay.image_ids[lay.gt_image[of_category & (outcomes.object == FN)]])


def images_with_cause(outcomes: Outcomes, analysis: ErrorAnalysis, cause: str) -> np.ndarray:
    """The ids of the images holding a kept false positive of ``cause`` (one of ``CAUSES``;
    sorted)."""
    lay = outcomes.evaluation.layout
    chosen = outcomes.kept & (analysis.cause == CAUSES.index(cause))
    return np.unique(lay.image_ids[lay.dt_image[chosen]])


@dataclass(frozen=True)
class ImageMatches:
    """One image's kept detections, best score first, and what became of its objects.

    Attributes:
        result_row: each detection's row in its :class:`Detections`.
        category_id, score: the detection's; bbox: its box (x y w h), ``(n, 4)``.
        outcome: "TP", "FP" or "ignored" (it found a crowd).
        cause: a false positive's cause (one of ``CAUSES``), "" for the others (and for every
            detection when no error analysis was given).
        annotation_id: the object (or crowd) it found, -1 for none; iou: that match's IoU (-1).
        object_rows: the rows in ``index.annotations`` of the image's evaluated annotations
            (file order); object_outcome: each one's, "TP" (found), "FN" (missed) or "ignored"
            (a crowd).
        dropped: the image's evaluated detections that score under the threshold.
    """

    result_row: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray
    outcome: np.ndarray
    cause: np.ndarray
    annotation_id: np.ndarray
    iou: np.ndarray
    object_rows: np.ndarray
    object_outcome: np.ndarray
    dropped: int

    def __len__(self) -> int:
        return len(self.result_row)

    @property
    def missed_rows(self) -> np.ndarray:
        """The annotation rows of the objects no kept detection found."""
        return self.object_rows[self.object_outcome == "FN"]

    def counts(self) -> dict[Outcome, int]:
        """How many kept detections of each outcome, and ``FN`` the objects missed."""
        return {
            "TP": int((self.outcome == "TP").sum()),
            "FP": int((self.outcome == "FP").sum()),
            "FN": len(self.missed_rows),
            "ignored": int((self.outcome == "ignored").sum()),
        }


def image_matches(
    outcomes: Outcomes,
    index: CocoIndex,
    detections: Detections,
    image_id: int,
    analysis: ErrorAnalysis | None = None,
) -> ImageMatches:
    """The matches of one image (see :class:`ImageMatches`); none for an image the evaluation
    does not hold."""
    evaluation = outcomes.evaluation
    lay, t = evaluation.layout, threshold_index(evaluation, outcomes.iou)
    img = np.flatnonzero(lay.image_ids == int(image_id))
    on_image = lay.dt_image == (img[0] if len(img) else -1)
    mine = np.flatnonzero(on_image & outcomes.kept)
    mine = mine[np.argsort(-lay.dt_score[mine], kind="stable")]
    match = evaluation.dt_match[t][mine]
    gt_ids = index.annotations["id"][lay.gt_rows]
    causes = np.array(["", *CAUSES], dtype=object)
    cause = (
        causes[np.maximum(analysis.cause[mine], -1) + 1]
        if analysis is not None
        else np.full(len(mine), "", dtype=object)
    )
    objects = np.flatnonzero(lay.gt_image == (img[0] if len(img) else -1))
    objects = objects[np.argsort(lay.gt_rows[objects], kind="stable")]
    rows = lay.dt_rows[mine]
    return ImageMatches(
        result_row=rows,
        category_id=detections.category_id[rows],
        score=detections.score[rows],
        bbox=detections.bbox[rows],
        outcome=np.array(OUTCOMES, dtype=object)[outcomes.detection[mine]],
        cause=cause,
        annotation_id=np.where(match >= 0, gt_ids[np.maximum(match, 0)], -1),
        iou=matched_iou(evaluation, mine, match),
        object_rows=lay.gt_rows[objects],
        object_outcome=np.array(OUTCOMES, dtype=object)[outcomes.object[objects]],
        dropped=int((on_image & ~outcomes.kept).sum()),
    )
