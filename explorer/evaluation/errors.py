"""Why each detection failed and what each kind of failure costs: TIDE's scheme on COCO's
matching, and a detection confusion matrix.

The matching is COCOeval's (at IoU 0.5, all areas); every false positive then gets one cause,
tested in TIDE's order (Bolya et al. 2020, ``tidecv``): *background* when its image has no
ground truth, *localisation* when its best same-class IoU is in [0.1, 0.5), *classification*
when it covers an object of another class (IoU >= 0.5), *duplicate* when the object it covers
was already found, *background* when it covers nothing (IoU <= 0.1), else *both* (wrong class
and poor box). Objects nobody found and no such error explains are *missed*. What an error kind
costs is the AP@0.5 gained when only those errors are fixed (TIDE's dAP), computed with the
same accumulation as the summary, so it is in the summary's units.

Cross-class overlaps need every detection against every object of its image, not just its own
category's: those pairs are computed in chunks of whole images (bounded memory on dense images)
and reduced on the fly to each detection's best same- and other-class overlap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from explorer.coco.index import CocoIndex
from explorer.evaluation import _kernels
from explorer.evaluation.cocoeval import Evaluation
from explorer.evaluation.layout import Blocks, Layout
from explorer.evaluation.overlaps import OVERLAPS, Sides
from explorer.types import ERROR_CAUSES

if TYPE_CHECKING:
    from explorer.predictions.results import Detections

POSITIVE, BACKGROUND = 0.5, 0.1  # TIDE's thresholds
CAUSES = ERROR_CAUSES
# one line each, for a reader (the causes, then the objects nobody found)
EXPLANATIONS = {
    "classification": "found an object of another class well (IoU >= 0.5): right place, wrong name",
    "localisation": "the right class, but its box or mask is off (IoU 0.1 to 0.5 with the object)",
    "both": "the wrong class and a poor box: it overlaps another class's object a little",
    "duplicate": "the right object, already found by a better-scoring detection",
    "background": "covers no object (IoU <= 0.1 with all of them), or its image has none",
    "missed": "an object no detection found, not even a poor or mislabelled one",
}
# a detection's cause code: its index in CAUSES, or one of these
TRUE_POSITIVE, IGNORED = -1, -2


@dataclass(frozen=True)
class Overlaps:
    """Each evaluated detection's best overlap with an object of its own class and of another
    class in its image (crowds left out: -1 and index -1 when there is none), and every
    (detection, object) pair of any classes overlapping by IoU >= 0.5."""

    same_iou: np.ndarray
    same_gt: np.ndarray
    other_iou: np.ndarray
    other_gt: np.ndarray
    pair_dt: np.ndarray
    pair_gt: np.ndarray
    pair_iou: np.ndarray


@dataclass(frozen=True)
class ErrorAnalysis:
    """The causes (see the module doc) and their cost.

    Attributes:
        cause: per evaluated detection (``layout.dt_rows`` order): an index into ``CAUSES``,
            ``TRUE_POSITIVE`` or ``IGNORED`` (it hit a crowd).
        missed: per evaluated object (``layout.gt_rows`` order): found by nobody and explained
            by no classification or localisation error.
        delta_ap: AP@0.5 gained by fixing each kind of error alone (``CAUSES`` and "missed").
        ap50: AP@0.5 as evaluated.
        overlaps: the cross-class overlaps behind the causes.
    """

    cause: np.ndarray
    missed: np.ndarray
    delta_ap: dict[str, float]
    ap50: float
    overlaps: Overlaps

    def counts(self) -> dict[str, int]:
        """How many detections of each cause, and how many objects missed."""
        found = np.bincount(self.cause[self.cause >= 0], minlength=len(CAUSES))
        return {**dict(zip(CAUSES, found.tolist(), strict=True)), "missed": int(self.missed.sum())}


def image_blocks(lay: Layout, objects: np.ndarray) -> Blocks:
    """Every evaluated detection against every object of its image (``objects``: a mask over
    ``gt_rows``), one block per image."""
    n_img = len(lay.image_ids)
    dt = np.argsort(lay.dt_image, kind="stable")
    gt = np.flatnonzero(objects)
    gt = gt[np.argsort(lay.gt_image[gt], kind="stable")]
    images = np.arange(n_img)
    d_sorted, g_sorted = lay.dt_image[dt], lay.gt_image[gt]
    return Blocks(
        dt=dt,
        gt=gt,
        d_lo=np.searchsorted(d_sorted, images),
        d_hi=np.searchsorted(d_sorted, images, "right"),
        g_lo=np.searchsorted(g_sorted, images),
        g_hi=np.searchsorted(g_sorted, images, "right"),
    )


def cross_class_overlaps(
    evaluation: Evaluation, index: CocoIndex, detections: Detections
) -> Overlaps:
    """:class:`Overlaps` of every evaluated detection (see :func:`image_blocks`)."""
    lay = evaluation.layout
    objects = ~index.annotations["iscrowd"][lay.gt_rows]
    sides = Sides(index, detections, lay, evaluation.params)
    overlap = OVERLAPS[evaluation.params.iou_type]
    n_dt = len(lay.dt_rows)
    best = [np.full(n_dt, -1.0), np.full(n_dt, -1), np.full(n_dt, -1.0), np.full(n_dt, -1)]
    pairs: list[tuple[np.ndarray, ...]] = []
    for _, chunk in image_blocks(lay, objects).chunks():
        ious = overlap.ious(sides, chunk)
        pd, pg = chunk.pairs()
        _best_overlaps(pd, pg, ious, lay.dt_category, lay.gt_category, *best)
        kept = ious >= POSITIVE
        pairs.append((pd[kept], pg[kept], ious[kept]))
    pairs.append((np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)))
    pair_dt, pair_gt, pair_iou = (np.concatenate(p) for p in zip(*pairs, strict=True))
    same_iou, same_gt, other_iou, other_gt = best
    return Overlaps(same_iou, same_gt, other_iou, other_gt, pair_dt, pair_gt, pair_iou)


@njit(cache=True, nogil=True)
def _best_overlaps(pd, pg, ious, dt_cat, gt_cat, same_iou, same_gt, other_iou, other_gt):  # noqa: PLR0913
    for i in range(pd.shape[0]):
        d, g = pd[i], pg[i]
        if dt_cat[d] == gt_cat[g]:
            if ious[i] > same_iou[d]:
                same_iou[d], same_gt[d] = ious[i], g
        elif ious[i] > other_iou[d]:
            other_iou[d], other_gt[d] = ious[i], g


def _threshold(evaluation: Evaluation, iou: float = POSITIVE) -> int:
    found = np.flatnonzero(evaluation.params.iou_thresholds == iou)
    if not len(found):
        raise ValueError(f"IoU {iou} is not among the evaluated thresholds")
    return int(found[0])


def _causes(evaluation: Evaluation, ov: Overlaps, state: np.ndarray) -> np.ndarray:
    lay = evaluation.layout
    objects = ~evaluation.gt_ignored[0]
    has_objects = np.bincount(lay.gt_image[objects], minlength=len(lay.image_ids)) > 0
    bg, loc, cls, dup, both = (
        CAUSES.index(c)
        for c in ("background", "localisation", "classification", "duplicate", "both")
    )
    found = np.select(
        [
            ~has_objects[lay.dt_image],
            (ov.same_iou >= BACKGROUND) & (ov.same_iou < POSITIVE),
            ov.other_iou >= POSITIVE,
            ov.same_iou >= POSITIVE,
            np.maximum(ov.same_iou, ov.other_iou) <= BACKGROUND,
        ],
        [bg, loc, cls, dup, bg],
        default=both,
    )
    cause = np.where(state == _kernels.IGNORED, IGNORED, TRUE_POSITIVE)
    wrong = state == _kernels.FALSE_POSITIVE
    cause[wrong] = found[wrong]
    return cause


@dataclass(frozen=True)
class _Curve:
    """What AP@0.5 is accumulated from: one state per detection, its category, the positives."""

    state: np.ndarray
    category: np.ndarray
    positives: np.ndarray


def _ap(evaluation: Evaluation, score: np.ndarray, curve: _Curve) -> float:
    lay, params = evaluation.layout, evaluation.params
    n_cat = len(lay.category_ids)
    by_score = np.lexsort((-score, curve.category))
    cats = curve.category[by_score]
    precision, _, _ = _kernels.accumulate(
        np.searchsorted(cats, np.arange(n_cat)), np.searchsorted(cats, np.arange(n_cat), "right"),
        by_score, lay.rank, score, curve.state[None, None, :].astype(np.int8),
        curve.positives[:, None], np.array([params.max_dets[-1]]), params.recall_thresholds,
    )  # fmt: skip
    p = precision[0, :, :, 0, 0]
    return float(np.mean(p[p > -1])) if (p > -1).any() else -1.0


@dataclass(frozen=True)
class _Errors:
    """What fixing needs: each detection's cause, score and the object it covers (-1 none),
    each object's category, which objects nobody found and which of those no error explains."""

    cause: np.ndarray
    score: np.ndarray
    target: np.ndarray
    gt_category: np.ndarray
    unfound: np.ndarray
    missed: np.ndarray


def _fixed(base: _Curve, errors: _Errors, which: str) -> _Curve:
    """``base`` with the errors of one kind fixed, as TIDE fixes them: a classification or
    localisation error becomes the true positive of the object it covers when that object was
    missed and it is the object's best-scoring such error (relabelled to the object's class),
    else it goes; other false positives go; missed objects leave the positives."""
    if which == "missed":
        less = np.bincount(errors.gt_category[errors.missed], minlength=len(base.positives))
        return replace(base, positives=base.positives - less)
    chosen = errors.cause == CAUSES.index(which)
    target = errors.target
    state, category = base.state.copy(), base.category.copy()
    state[chosen] = _kernels.IGNORED
    if which in ("classification", "localisation"):
        rows = np.flatnonzero(chosen & (target >= 0))
        rows = rows[np.argsort(-errors.score[rows], kind="stable")]
        rows = rows[errors.unfound[target[rows]]]
        rows = rows[np.unique(target[rows], return_index=True)[1]]
        state[rows] = _kernels.TRUE_POSITIVE
        category[rows] = errors.gt_category[target[rows]]
    return replace(base, state=state, category=category)


def analyse_errors(
    evaluation: Evaluation, index: CocoIndex, detections: Detections
) -> ErrorAnalysis:
    """TIDE's error causes and their AP cost on COCO's matching at IoU 0.5 (module doc)."""
    lay, t = evaluation.layout, _threshold(evaluation)
    ov = cross_class_overlaps(evaluation, index, detections)
    state = evaluation.state[0, t]
    cause = _causes(evaluation, ov, state)
    objects = ~evaluation.gt_ignored[0]
    unfound = objects & (evaluation.gt_match[t] < 0)
    claimed = np.zeros(len(lay.gt_rows), bool)
    claimed[ov.same_gt[cause == CAUSES.index("localisation")]] = True
    claimed[ov.other_gt[cause == CAUSES.index("classification")]] = True
    score = lay.dt_score
    positives = np.bincount(lay.gt_category[objects], minlength=len(lay.category_ids))
    base = _Curve(state, lay.dt_category, positives)
    ap50 = _ap(evaluation, score, base)
    target = np.where(cause == CAUSES.index("classification"), ov.other_gt, ov.same_gt)
    errors = _Errors(cause, score, target, lay.gt_category, unfound, unfound & ~claimed)
    delta = {
        which: max(_ap(evaluation, score, _fixed(base, errors, which)) - ap50, 0.0)
        for which in (*CAUSES, "missed")
    }
    return ErrorAnalysis(cause, errors.missed, delta, ap50, ov)


@dataclass(frozen=True)
class Confusion:
    """A detection confusion matrix at IoU 0.5 above a score: rows are the objects' classes then
    "background" (a detection that covers nothing), columns the detections' classes then
    "background" (an object nobody found). ``dt_cell`` / ``gt_cell``: each evaluated
    detection's / object's (row, column), (-1, -1) when it is not counted (below the score, on
    a crowd)."""

    matrix: np.ndarray
    dt_cell: np.ndarray
    gt_cell: np.ndarray


def confusion(evaluation: Evaluation, analysis: ErrorAnalysis, min_score: float = 0.0) -> Confusion:
    """COCO's matches are the diagonal; of what is left, a detection and an object of another
    class overlapping by IoU >= 0.5 pair up (highest IoU first, each at most once)."""
    lay, t = evaluation.layout, _threshold(evaluation)
    n_cat = len(lay.category_ids)
    score = lay.dt_score
    state = evaluation.state[0, t]
    above = score >= min_score
    dt_cell = np.full((len(score), 2), -1)
    gt_cell = np.full((len(lay.gt_rows), 2), -1)
    found = (state == _kernels.TRUE_POSITIVE) & above
    matched = evaluation.dt_match[t][found]
    dt_cell[found] = lay.gt_category[matched][:, None]
    gt_cell[matched] = lay.gt_category[matched][:, None]
    left_dt = (state == _kernels.FALSE_POSITIVE) & above
    left_gt = ~evaluation.gt_ignored[0] & (gt_cell[:, 0] < 0)
    ov = analysis.overlaps
    keep = left_dt[ov.pair_dt] & left_gt[ov.pair_gt]
    pd, pg = ov.pair_dt[keep], ov.pair_gt[keep]
    order = np.argsort(-ov.pair_iou[keep], kind="stable")
    pd, pg = pd[order], pg[order]
    first = np.unique(pd, return_index=True)[1]
    pd, pg = pd[np.sort(first)], pg[np.sort(first)]
    first = np.unique(pg, return_index=True)[1]
    pd, pg = pd[first], pg[first]
    dt_cell[pd] = np.stack([lay.gt_category[pg], lay.dt_category[pd]], axis=1)
    gt_cell[pg] = dt_cell[pd]
    lone_dt = left_dt & (dt_cell[:, 0] < 0)
    dt_cell[lone_dt] = np.stack([np.full(lone_dt.sum(), n_cat), lay.dt_category[lone_dt]], axis=1)
    lone_gt = left_gt & (gt_cell[:, 0] < 0)
    gt_cell[lone_gt] = np.stack([lay.gt_category[lone_gt], np.full(lone_gt.sum(), n_cat)], axis=1)
    matrix = np.zeros((n_cat + 1, n_cat + 1), np.int64)
    counted = np.concatenate([dt_cell[dt_cell[:, 0] >= 0], gt_cell[lone_gt]])
    np.add.at(matrix, (counted[:, 0], counted[:, 1]), 1)
    return Confusion(matrix, dt_cell, gt_cell)


def categories_by_errors(matrix: np.ndarray) -> np.ndarray:
    """The category indices of a :class:`Confusion` matrix with any object or detection, most
    errors first (off-diagonal counts of its row and its column, background included; ties by
    index)."""
    n_cat = matrix.shape[0] - 1
    off = matrix - np.diag(np.diag(matrix))
    errors = off[:n_cat].sum(axis=1) + off[:, :n_cat].sum(axis=0)
    present = (matrix[:n_cat].sum(axis=1) + matrix[:, :n_cat].sum(axis=0)) > 0
    order = np.lexsort((np.arange(n_cat), -errors))
    return order[present[order]]


def cell_image_ids(evaluation: Evaluation, matrix: Confusion, row: int, column: int) -> np.ndarray:
    """The ids of the images whose objects or detections a :class:`Confusion` cell counts
    (sorted)."""
    lay = evaluation.layout
    cell = np.array([row, column])
    images = np.concatenate(
        [
            lay.dt_image[(matrix.dt_cell == cell).all(axis=1)],
            lay.gt_image[(matrix.gt_cell == cell).all(axis=1)],
        ]
    )
    return lay.image_ids[np.unique(images)]
