"""Annotation mistakes suggested by a detector's predictions (a COCO results file).

A detector's confident error looks exactly like a label error, seen from the other side: a
confident detection that covers no object (a *background* false positive) is either the
detector seeing things or an object nobody annotated; a confident detection of another class
on an object (a *classification* error) is either the detector confusing classes or a wrong
label. These rows say which: their ``evidence`` is the detector, their ``detector_score`` its
confidence, and nothing else vouches for them (unlike the classifier + segmenter rows, where two
models that look differently agree). Rows:

* ``missing``: a false positive scoring at least ``min_score`` (COCO's matching at IoU 0.5) that
  overlaps no object of its class by more than 0.1 and covers no object of another class (IoU
  < 0.5: that would be a classification error): TIDE's *background* errors, and its *both*
  errors that only touch another object (a rider on an annotated horse). Several such
  detections of one class on one spot (IoU >= 0.5) are one suspect, the best-scoring.
* ``wrong_label``: a false positive scoring at least ``min_score`` that covers an object
  annotated as another class (IoU >= 0.5) and no object of its own class (IoU < 0.5): TIDE's
  *classification* errors, and its *localisation* errors that do cover such an object (TIDE
  tests localisation first); the suggestion is the detection's class. One row per object (its
  best-scoring such detection).

``score`` is the detection's score: the probability the detector gives its own claim.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.evaluation.cocoeval import Evaluation
from explorer.evaluation.errors import BACKGROUND, CAUSES, POSITIVE, ErrorAnalysis
from explorer.evaluation.layout import Blocks
from explorer.evaluation.overlaps import Sides, box_iou
from explorer.inference.mistakes import NONE, Mistake
from explorer.predictions.results import Detections


def _best_first(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    return rows[np.argsort(-score[rows], kind="stable")]


def _one_per_spot(
    evaluation: Evaluation, index: CocoIndex, detections: Detections, rows: np.ndarray
) -> np.ndarray:
    """``rows`` (best first) without those overlapping a better one of their image and class by
    IoU >= 0.5 (boxes)."""
    lay = evaluation.layout
    key = lay.dt_image[rows] * len(lay.category_ids) + lay.dt_category[rows]
    order = np.argsort(key, kind="stable")  # groups, best first within each
    grouped, keys = rows[order], key[order]
    starts = np.searchsorted(keys, np.unique(keys))
    ends = np.append(starts[1:], len(keys))
    blocks = Blocks(grouped, grouped, starts, ends, starts, ends)
    sides = Sides(index, detections, lay, evaluation.params)
    ious = _detection_ious(sides, blocks)
    first, second = blocks.positions()
    beaten = (second > first) & (ious >= 0.5)
    dropped = np.zeros(len(grouped), bool)
    dropped[second[beaten]] = True
    return grouped[~dropped]


def _detection_ious(sides: Sides, blocks: Blocks) -> np.ndarray:
    """Box IoU between detections (``blocks.gt`` holds detections too)."""
    a, b = blocks.pairs()
    boxes = sides.detections.bbox[sides.layout.dt_rows]
    return box_iou(boxes[a], boxes[b], np.zeros(len(a), bool))


def detector_suspects(
    evaluation: Evaluation,
    analysis: ErrorAnalysis,
    index: CocoIndex,
    detections: Detections,
    min_score: float = 0.5,
) -> list[Mistake]:
    """The ``missing`` and ``wrong_label`` rows a detector's errors suggest (module doc),
    best-scoring first within each kind."""
    score = evaluation.layout.dt_score
    confident = score >= min_score
    ov = analysis.overlaps
    wrong = np.isin(analysis.cause, [CAUSES.index("background"), CAUSES.index("both")])
    background = np.flatnonzero(
        confident & wrong & (ov.same_iou <= BACKGROUND) & (ov.other_iou < POSITIVE)
    )
    missing = _one_per_spot(evaluation, index, detections, _best_first(background, score))
    false = analysis.cause >= 0
    swapped = _best_first(
        np.flatnonzero(confident & false & (ov.other_iou >= POSITIVE) & (ov.same_iou < POSITIVE)),
        score,
    )
    swapped = swapped[np.unique(analysis.overlaps.other_gt[swapped], return_index=True)[1]]
    name = f"detector {detections.path.name}" if detections.path else "detector"
    rows = [_missing_row(evaluation, detections, d, name) for d in _best_first(missing, score)]
    rows += [
        _wrong_label_row(evaluation, index, d, int(analysis.overlaps.other_gt[d]), name)
        for d in _best_first(swapped, score)
    ]
    return rows


def _common(evaluation: Evaluation, d: int, name: str) -> dict:
    lay = evaluation.layout
    return {
        "image_id": int(lay.image_ids[lay.dt_image[d]]),
        "category_id": int(lay.category_ids[lay.dt_category[d]]),
        "score": float(lay.dt_score[d]),
        "classifier_annotated": math.nan,
        "classifier_suggested": math.nan,
        "segmenter_annotated": math.nan,
        "segmenter_suggested": math.nan,
        "segmenter_foreground": math.nan,
        "mask_iou": math.nan,
        "evidence": name,
        "detector_score": float(lay.dt_score[d]),
    }


def _missing_row(evaluation: Evaluation, detections: Detections, d: int, name: str) -> Mistake:
    row = int(evaluation.layout.dt_rows[d])
    rle = "" if detections.rles is None else detections.rles.rle(row)["counts"].decode()
    return Mistake(  # type: ignore[typeddict-item]  # the shared fields come from _common
        kind="missing",
        annotation_id=NONE,
        annotated_category_id=NONE,
        bbox=[float(v) for v in detections.bbox[row]],
        suggested_rle=rle,
        **_common(evaluation, d, name),
    )


def _wrong_label_row(
    evaluation: Evaluation, index: CocoIndex, d: int, g: int, name: str
) -> Mistake:
    ann = int(evaluation.layout.gt_rows[g])
    anns = index.annotations
    return Mistake(  # type: ignore[typeddict-item]  # the shared fields come from _common
        kind="wrong_label",
        annotation_id=int(anns["id"][ann]),
        annotated_category_id=int(anns["category_id"][ann]),
        bbox=[float(v) for v in anns["bbox"][ann]],
        suggested_rle="",
        **_common(evaluation, d, name),
    )


def file_suspects(
    path: str | Path, index: CocoIndex, min_score: float = 0.5, image_ids=None
) -> list[Mistake]:
    """:func:`detector_suspects` of a COCO results file, read as its first kind (pycocotools'
    guess: ``segm`` for masks) and evaluated with COCO's default parameters; ``image_ids``: only
    the rows of these images.

    Raises:
        PredictionsError: the file cannot be read as results of this dataset.
    """
    from explorer.evaluation.cocoeval import evaluate
    from explorer.evaluation.errors import analyse_errors
    from explorer.evaluation.params import EvalParams
    from explorer.predictions.results import available_kinds, read_results

    kind = available_kinds(path)[0]
    detections = read_results(path, index, kind)
    evaluation = evaluate(index, detections, EvalParams.for_iou_type(kind))
    analysis = analyse_errors(evaluation, index, detections)
    rows = detector_suspects(evaluation, analysis, index, detections, min_score)
    if image_ids is None:
        return rows
    wanted = {int(i) for i in image_ids}
    return [r for r in rows if r["image_id"] in wanted]
