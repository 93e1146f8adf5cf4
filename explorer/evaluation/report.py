"""What an evaluation tells a user beyond the summary: a row per category and an outcome per
object (which detection found which ground truth, and at what IoU)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.evaluation import _kernels
from explorer.evaluation.cocoeval import Evaluation

if TYPE_CHECKING:
    from explorer.predictions.results import Detections


class CategoryRow(TypedDict):
    """One category's numbers (-1 where it has no ground truth, as pycocotools says)."""

    category_id: int
    name: str
    ap: float  # AP@[.50:.95], all areas, the largest maxDets
    ap50: float
    ap75: float
    ar: float  # AR@[.50:.95] at the largest maxDets
    ground_truths: int  # not ignored (crowds and, for keypoints, people without keypoints are)
    detections: int  # evaluated (within the largest maxDets per image)


def _ap_at(evaluation: Evaluation, threshold: float) -> np.ndarray:
    t = np.flatnonzero(evaluation.params.iou_thresholds == threshold)
    p = evaluation.precision[t][:, :, :, 0, -1]  # T' x R x K
    kept = p > -1
    sums = np.where(kept, p, 0).sum(axis=(0, 1))
    return np.where(kept.any(axis=(0, 1)), sums / np.maximum(kept.sum(axis=(0, 1)), 1), -1.0)


def category_rows(evaluation: Evaluation, index: CocoIndex) -> list[CategoryRow]:
    """One row per evaluated category, in id order."""
    lay = evaluation.layout
    names = {c["id"]: c["name"] for c in index.categories}
    n_cat = len(lay.category_ids)
    ground_truths = np.bincount(lay.gt_category[~evaluation.gt_ignored[0]], minlength=n_cat)
    detections = np.bincount(lay.dt_category, minlength=n_cat)
    columns = {
        "ap": evaluation.category_ap(),
        "ap50": _ap_at(evaluation, 0.5),
        "ap75": _ap_at(evaluation, 0.75),
        "ar": evaluation.category_recall(),
    }
    return [
        CategoryRow(
            category_id=int(cid),
            name=names.get(int(cid), str(cid)),
            ap=float(columns["ap"][k]),
            ap50=float(columns["ap50"][k]),
            ap75=float(columns["ap75"][k]),
            ar=float(columns["ar"][k]),
            ground_truths=int(ground_truths[k]),
            detections=int(detections[k]),
        )
        for k, cid in enumerate(lay.category_ids.tolist())
    ]


OUTCOMES = np.array(["FP", "TP", "ignored"], dtype=object)  # by _kernels' state codes
assert (_kernels.FALSE_POSITIVE, _kernels.TRUE_POSITIVE, _kernels.IGNORED) == (0, 1, 2)


def threshold_index(evaluation: Evaluation, iou: float) -> int:
    found = np.flatnonzero(np.isclose(evaluation.params.iou_thresholds, iou))
    if not len(found):
        thresholds = ", ".join(f"{t:g}" for t in evaluation.params.iou_thresholds)
        raise ValueError(f"IoU {iou} is not an evaluated threshold ({thresholds})")
    return int(found[0])


def matched_iou(evaluation: Evaluation, dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """The IoU of each (detection, ground truth) pair of the layout (-1 where there is none)."""
    lay = evaluation.layout
    out = np.full(len(dt), -1.0)
    ok = (dt >= 0) & (gt >= 0)
    if not ok.any():
        return out
    bucket = np.searchsorted(lay.d_hi, dt[ok], "right")
    ng = lay.g_hi[bucket] - lay.g_lo[bucket]
    at = lay.iou_at[bucket] + (dt[ok] - lay.d_lo[bucket]) * ng + (gt[ok] - lay.g_lo[bucket])
    out[ok] = evaluation.ious[at]
    return out


def detection_outcomes(
    evaluation: Evaluation, index: CocoIndex, detections: Detections, iou: float = 0.5
) -> dict[str, np.ndarray]:
    """Per evaluated detection at IoU threshold ``iou`` (all areas): its row in the results,
    image, category, score, outcome (TP, FP or ignored: on a crowd), the matched annotation id
    (-1 none) and the IoU of that match."""
    lay, t = evaluation.layout, threshold_index(evaluation, iou)
    match = evaluation.dt_match[t]
    gt_ids = index.annotations["id"][lay.gt_rows]
    return {
        "result_row": lay.dt_rows,
        "image_id": detections.image_id[lay.dt_rows],
        "category_id": detections.category_id[lay.dt_rows],
        "score": detections.score[lay.dt_rows],
        "outcome": OUTCOMES[evaluation.state[0, t]],
        "annotation_id": np.where(match >= 0, gt_ids[np.maximum(match, 0)], -1),
        "iou": matched_iou(evaluation, np.arange(len(match)), match),
    }


def ground_truth_outcomes(
    evaluation: Evaluation, index: CocoIndex, iou: float = 0.5
) -> dict[str, np.ndarray]:
    """Per evaluated annotation at IoU threshold ``iou``: its id, image, category, outcome (TP:
    found, FN: missed, ignored: a crowd), the matching detection's row in the results (-1
    none) and the IoU of that match."""
    lay, t = evaluation.layout, threshold_index(evaluation, iou)
    match = evaluation.gt_match[t]
    ignored = evaluation.gt_ignored[0]
    outcome = np.where(ignored, "ignored", np.where(match >= 0, "TP", "FN")).astype(object)
    return {
        "annotation_id": index.annotations["id"][lay.gt_rows],
        "image_id": index.annotations["image_id"][lay.gt_rows],
        "category_id": lay.category_ids[lay.gt_category],
        "outcome": outcome,
        "result_row": np.where(match >= 0, lay.dt_rows[np.maximum(match, 0)], -1),
        "iou": matched_iou(evaluation, match, np.arange(len(match))),
    }


def _skipped_text(detections: Detections) -> str:
    if not detections.num_skipped:
        return "none skipped"
    reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(detections.skipped.items()))
    return f"{detections.num_skipped:,} skipped ({reasons})"


def results_json(
    evaluation: Evaluation, detections: Detections, rows: list[CategoryRow], seconds: float
) -> dict:
    """What ``eval-results --json`` prints: ``stats`` in pycocotools' order, the summary lines,
    ``per_category`` rows, ``skipped`` (results records not evaluated) and why."""
    return {
        "iou_type": evaluation.params.iou_type,
        "stats": [row.value for row in evaluation.summary()],
        "summary": [row.line for row in evaluation.summary()],
        "per_category": rows,
        "records": len(detections) + detections.num_skipped,
        "evaluated": len(detections),
        "skipped": detections.num_skipped,
        "skipped_reasons": dict(detections.skipped),
        "images": len(evaluation.layout.image_ids),
        "seconds": round(seconds, 3),
    }


def results_text(
    evaluation: Evaluation, detections: Detections, rows: list[CategoryRow], seconds: float
) -> str:
    """What ``eval-results`` prints: pycocotools' summary lines as it prints them, then AP per
    category."""
    p = evaluation.params
    head = (
        f"{p.iou_type}: {len(detections):,} results on {len(evaluation.layout.image_ids):,} "
        f"images, {_skipped_text(detections)} · {seconds:.2f} s"
    )
    table = [
        f"AP per category (IoU {p.iou_thresholds[0]:.2f}:{p.iou_thresholds[-1]:.2f}, all areas, "
        f"maxDets {p.max_dets[-1]}; -1: no ground truth)",
        f"{'id':>5}  {'category':<20} {'AP':>6} {'AP50':>6} {'AP75':>6} {'AR':>6} {'GT':>7} "
        f"{'dets':>8}",
        *(
            f"{r['category_id']:>5}  {r['name'][:20]:<20} {r['ap']:>6.3f} {r['ap50']:>6.3f} "
            f"{r['ap75']:>6.3f} {r['ar']:>6.3f} {r['ground_truths']:>7,} {r['detections']:>8,}"
            for r in rows
        ),
    ]
    return "\n".join([head, *(row.line for row in evaluation.summary()), "", *table])


class Counts(TypedDict):
    """Detections kept at a score threshold, at one IoU threshold (all areas), per category."""

    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray


def counts_at(evaluation: Evaluation, min_score: float, iou: float = 0.5) -> Counts:
    """TP, FP and FN per category (``category_ids`` order) when only detections scoring at least
    ``min_score`` are kept. COCO's matching is greedy by score, so keeping the best-scoring
    detections of each bucket keeps their matches: nothing is matched again."""
    lay = evaluation.layout
    by = (lay.dt_category, lay.gt_category, len(lay.category_ids))
    tp, fp, positives = _tallies(evaluation, min_score, iou, by)
    return Counts(true_positives=tp, false_positives=fp, false_negatives=positives - tp)


def _tallies(
    evaluation: Evaluation, min_score: float, iou: float, by: tuple[np.ndarray, np.ndarray, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP and FP among the detections scoring at least ``min_score`` at IoU ``iou``, and the
    objects that count, each tallied by ``by`` (each detection's and object's group, groups)."""
    dt_group, gt_group, groups = by
    state = evaluation.state[0, threshold_index(evaluation, iou)]
    kept = evaluation.layout.dt_score >= min_score
    tp = np.bincount(dt_group[kept & (state == _kernels.TRUE_POSITIVE)], minlength=groups)
    fp = np.bincount(dt_group[kept & (state == _kernels.FALSE_POSITIVE)], minlength=groups)
    return tp, fp, np.bincount(gt_group[~evaluation.gt_ignored[0]], minlength=groups)


class BestThreshold(TypedDict):
    """Per category: the score threshold where F1 (of the interpolated precision and recall at
    one IoU threshold) is highest, and the F1, precision and recall there."""

    score: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray


def f1_best(evaluation: Evaluation, iou: float = 0.5) -> BestThreshold:
    """:class:`BestThreshold` from the precision and scores arrays (NaN where the category has
    no ground truth or no detection reaches any recall)."""
    t = threshold_index(evaluation, iou)
    precision = evaluation.precision[t, :, :, 0, -1]  # R x K
    recall = evaluation.params.recall_thresholds[:, None]
    valid = precision > 0
    f1 = np.where(valid, 2 * precision * recall / np.where(valid, precision + recall, 1), -1.0)
    best = np.argmax(f1, axis=0)
    cols = np.arange(f1.shape[1])
    none = ~valid.any(axis=0)
    pick = evaluation.scores[t, best, cols, 0, -1]
    return BestThreshold(
        score=np.where(none, np.nan, pick),
        f1=np.where(none, np.nan, f1[best, cols]),
        precision=np.where(none, np.nan, precision[best, cols]),
        recall=np.where(none, np.nan, evaluation.params.recall_thresholds[best]),
    )


def pr_curve(evaluation: Evaluation, iou: float, category: int | None = None) -> np.ndarray:
    """Interpolated precision at each recall threshold (all areas, the largest maxDets) for one
    category index, or the mean over categories with ground truth (``None``); -1 when none."""
    t = threshold_index(evaluation, iou)
    p = evaluation.precision[t, :, :, 0, -1]
    if category is not None:
        return p[:, category].copy()
    kept = p[0] > -1
    return p[:, kept].mean(axis=1) if kept.any() else np.full(len(p), -1.0)


def pr_curve_mean(evaluation: Evaluation, category: int | None = None) -> np.ndarray:
    """:func:`pr_curve` averaged over every evaluated IoU threshold (COCO's AP@[.50:.95] is this
    curve's mean): for one category index, or over the categories with ground truth (``None``)."""
    p = evaluation.precision[:, :, :, 0, -1]  # T x R x K
    if category is not None:
        return p[:, :, category].mean(axis=0)
    kept = p[0, 0] > -1
    return p[:, :, kept].mean(axis=(0, 2)) if kept.any() else np.full(p.shape[1], -1.0)


class ImageCounts(TypedDict):
    """Per evaluated image (``layout.image_ids`` order): detections kept at a score threshold
    that found an object (TP), that found none (FP), and objects nobody kept found (FN), at one
    IoU threshold (all areas)."""

    image_id: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    false_negatives: np.ndarray


def image_counts(evaluation: Evaluation, min_score: float, iou: float = 0.5) -> ImageCounts:
    """:class:`ImageCounts` when only detections scoring at least ``min_score`` are kept (their
    matches stand: see :func:`counts_at`)."""
    lay = evaluation.layout
    tp, fp, objects = _tallies(
        evaluation, min_score, iou, (lay.dt_image, lay.gt_image, len(lay.image_ids))
    )
    return ImageCounts(
        image_id=lay.image_ids.copy(),
        true_positives=tp,
        false_positives=fp,
        false_negatives=objects - tp,
    )
