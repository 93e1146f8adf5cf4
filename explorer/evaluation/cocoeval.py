"""COCO evaluation of detections against a dataset, equal to pycocotools' ``COCOeval``.

``evaluate(index, detections, params)`` does what ``COCOeval.evaluate(); accumulate()`` do and
returns an :class:`Evaluation`: pycocotools' ``precision``, ``recall`` and ``scores`` arrays
(same shapes, same values), its 12 summary numbers (10 for keypoints) and the lines it prints,
AP per category, and what pycocotools computes but throws away: which detection matched which
ground truth at each threshold. See ``../shared/notes/evaluation.md`` for every rule followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.evaluation import _kernels
from explorer.evaluation.layout import Blocks, Layout, layout
from explorer.evaluation.overlaps import OVERLAPS, Sides
from explorer.evaluation.params import EvalParams
from explorer.evaluation.summary import SummaryRow, summary_rows

if TYPE_CHECKING:
    from explorer.predictions.results import Detections


@dataclass(frozen=True)
class Evaluation:
    """The result of :func:`evaluate`.

    Attributes:
        params: what was evaluated (ids sorted, as evaluated).
        layout: the evaluated ground truths and detections (see :class:`Layout`).
        precision: T x R x K x A x M, as pycocotools' ``eval['precision']``.
        recall: T x K x A x M; scores: T x R x K x A x M (the score where each recall
            threshold is reached).
        state: A x T x D detection outcomes (``_kernels.TRUE_POSITIVE`` ...); D: ``dt_rows``.
        gt_ignored: A x G, G = ``layout.gt_rows``.
        dt_match, gt_match: at the first area range, per threshold, the index of the matched
            ground truth / detection (into ``layout.gt_rows`` / ``layout.dt_rows``) or -1.
        ious: the flat IoU array of the layout (a mask IoU below the lowest threshold may be
            an upper bound of it, below that threshold: such pairs cannot match).
    """

    params: EvalParams
    layout: Layout
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray
    state: np.ndarray
    gt_ignored: np.ndarray
    dt_match: np.ndarray
    gt_match: np.ndarray
    ious: np.ndarray

    @property
    def category_ids(self) -> np.ndarray:
        return self.layout.category_ids

    def summary(self) -> list[SummaryRow]:
        """pycocotools' ``summarize``: one row per stat, with its printed line."""
        return summary_rows(
            self.precision, self.recall, self.params, OVERLAPS[self.params.iou_type].summary
        )

    @property
    def stats(self) -> np.ndarray:
        """The 12 summary numbers (10 for keypoints), in pycocotools' order."""
        return np.array([row.value for row in self.summary()])

    def category_ap(self, area: int = 0, max_det: int = -1) -> np.ndarray:
        """AP@[.50:.95] per category (``category_ids`` order), -1 where it has no ground truth:
        the mean of ``precision[:, :, k, area, max_det]`` over entries > -1, as usually
        reported from pycocotools' arrays."""
        out = np.full(len(self.category_ids), -1.0)
        for k in range(len(out)):
            p = self.precision[:, :, k, area, max_det]
            if (p > -1).any():
                out[k] = np.mean(p[p > -1])
        return out

    def category_recall(self, area: int = 0, max_det: int = -1) -> np.ndarray:
        """AR@[.50:.95] per category, -1 where it has no ground truth."""
        r = self.recall[:, :, area, max_det]
        kept = r > -1
        sums = np.where(kept, r, 0).sum(axis=0)
        return np.where(kept.any(axis=0), sums / np.maximum(kept.sum(axis=0), 1), -1.0)


def evaluate(index: CocoIndex, detections: Detections, params: EvalParams) -> Evaluation:
    """Evaluate ``detections`` against ``index`` as pycocotools' COCOeval does with ``params``."""
    params = params.checked()
    lay = layout(index, detections, params)
    # pairs that cannot match need no exact IoU (see Sides)
    floor = min(float(params.iou_thresholds.min()), _kernels.LAST_BELOW_ONE)
    sides = Sides(index, detections, lay, params, exact_from=floor)
    overlap = OVERLAPS[params.iou_type]
    ious = _overlaps(sides, lay.blocks)
    anns = index.annotations
    areas = np.asarray(params.area_ranges, np.float64).reshape(-1, 2)
    state, gt_ignored, dt_match, gt_match = _kernels.match(
        lay.g_lo, lay.g_hi, lay.d_lo, lay.d_hi, lay.iou_at, ious,
        overlap.ignored(sides), anns["iscrowd"][lay.gt_rows], anns["area"][lay.gt_rows],
        anns["id"][lay.gt_rows], detections.area[lay.dt_rows],
        areas, params.iou_thresholds,
    )  # fmt: skip
    precision, recall, scores = _accumulated(lay, params, state, gt_ignored)
    return Evaluation(
        params=params,
        layout=lay,
        precision=precision,
        recall=recall,
        scores=scores,
        state=state,
        gt_ignored=gt_ignored,
        dt_match=dt_match,
        gt_match=gt_match,
        ious=ious,
    )


def _overlaps(sides: Sides, blocks: Blocks) -> np.ndarray:
    """The flat IoU array of ``blocks``, computed a chunk of whole blocks at a time."""
    overlap = OVERLAPS[sides.params.iou_type]
    out = np.empty(blocks.num_pairs)
    for base, chunk in blocks.chunks():
        out[base : base + chunk.num_pairs] = overlap.ious(sides, chunk)
    return out


def _accumulated(
    lay: Layout,
    params: EvalParams,
    state: np.ndarray,
    gt_ignored: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' ``accumulate`` over the matched layout."""
    n_cat = len(lay.category_ids)
    score = lay.dt_score
    # per category by descending score; ties keep the layout's order (image, then rank)
    by_score = np.lexsort((-score, lay.dt_category))
    cats = lay.dt_category[by_score]
    cat_lo = np.searchsorted(cats, np.arange(n_cat))
    cat_hi = np.searchsorted(cats, np.arange(n_cat), "right")
    positives = np.stack(
        [np.bincount(lay.gt_category[~ignored], minlength=n_cat) for ignored in gt_ignored],
        axis=1,
    )
    return _kernels.accumulate(
        cat_lo, cat_hi, by_score, lay.rank, score, state, positives,
        np.asarray(params.max_dets, np.int64), params.recall_thresholds,
    )  # fmt: skip
