"""How well a detection covers a ground truth, one kind per iou type: box IoU, mask IoU, OKS.

Each kind computes the IoU of every pair of a :class:`Layout` in the order of its flat array,
with pycocotools' arithmetic: box IoU in the operation order of ``maskApi.c:bbIou`` (vectorised
over all pairs), mask IoU by pycocotools' own RLE code (it defines the masks), OKS with the
element-wise operations of ``COCOeval.computeOks`` and numpy's own summation per pair. A kind
also says which ground truths are ignored before area ranges (crowds; for keypoints, people
without labelled keypoints).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pycocotools import mask as mask_utils

from explorer.coco import rle as _rle
from explorer.coco.index import CocoIndex
from explorer.coco.masks import annotation_rles
from explorer.errors import ExplorerError
from explorer.evaluation import _kernels
from explorer.evaluation.layout import Blocks, Layout
from explorer.evaluation.params import EvalParams, IouType
from explorer.evaluation.summary import DETECTION_SUMMARY, KEYPOINT_SUMMARY, Spec

if TYPE_CHECKING:
    from explorer.predictions.results import Detections


@dataclass(frozen=True)
class Sides:
    """What an overlap sees: the dataset, the detections, their layout and the parameters."""

    index: CocoIndex
    detections: Detections
    layout: Layout
    params: EvalParams
    # an IoU that cannot reach this may be given as an upper bound below it (what matching needs
    # of a pair it cannot match: mask IoU skips counting pixels there); 0: every IoU exact
    exact_from: float = 0.0


class Overlap(Protocol):
    summary: tuple[Spec, ...]  # the summary numbers pycocotools prints for this iou type

    def ignored(self, sides: Sides) -> np.ndarray:
        """Per evaluated ground truth (``layout.gt_rows``): ignored whatever its area."""
        ...

    def ious(self, sides: Sides, blocks: Blocks) -> np.ndarray:
        """The IoU of every pair of ``blocks`` in its flattened order (float64)."""
        ...


def _crowd(sides: Sides) -> np.ndarray:
    return sides.index.annotations["iscrowd"][sides.layout.gt_rows]


def box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of each pair of x y w h boxes (rows of ``dt`` and ``gt``), as pycocotools computes
    it (``_kernels.box_iou``)."""
    return _kernels.pair_box_ious(
        np.ascontiguousarray(dt, np.float64),
        np.ascontiguousarray(gt, np.float64),
        np.ascontiguousarray(crowd, np.bool_),
    )


class BoxOverlap:
    """``bbox``: IoU of x y w h boxes; a crowd's union is the detection's own area."""

    summary = DETECTION_SUMMARY

    def ignored(self, sides: Sides) -> np.ndarray:
        return _crowd(sides).copy()

    def ious(self, sides: Sides, blocks: Blocks) -> np.ndarray:
        lay = sides.layout
        dt_used, gt_used = blocks.members()
        dt_box = np.ascontiguousarray(sides.detections.bbox[lay.dt_rows[dt_used]])
        gt_box = np.ascontiguousarray(sides.index.annotations["bbox"][lay.gt_rows[gt_used]])
        out = np.empty(blocks.num_pairs)
        at = blocks.for_kernels(dt_used, gt_used)
        _kernels.block_box_ious(dt_box, gt_box, _crowd(sides)[gt_used], at, out)
        return out


class MaskOverlap:
    """``segm``: IoU of masks as pycocotools' ``rleIou`` computes it (``coco.rle``, compiled)."""

    summary = DETECTION_SUMMARY

    def ignored(self, sides: Sides) -> np.ndarray:
        return _crowd(sides).copy()

    def ious(self, sides: Sides, blocks: Blocks) -> np.ndarray:
        rles = sides.detections.rles
        if rles is None:
            raise ExplorerError("segm evaluation needs results with segmentations")
        dt_used, gt_used = blocks.members()
        rows = sides.layout.dt_rows[dt_used]
        chars = np.frombuffer(rles.counts, np.uint8)
        dt_runs, dt_starts = _rle.decode(chars, rles.offsets[rows], rles.offsets[rows + 1])
        dt_masks = _rle.masks(dt_runs, dt_starts, rles.heights[rows])
        gt_runs, gt_starts, heights = _ground_truth_runs(sides.index, sides.layout.gt_rows[gt_used])
        gt_masks = _rle.masks(gt_runs, gt_starts, heights)
        out = np.empty(blocks.num_pairs)
        at = blocks.for_kernels(dt_used, gt_used)
        masks = (dt_masks, gt_masks, heights, _crowd(sides)[gt_used])
        _rle.block_mask_ious(masks, at, sides.exact_from, out)
        return out


def _ground_truth_runs(index: CocoIndex, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """The run lengths of each annotation's mask as pycocotools' ``annToRLE`` makes it (a
    box-only annotation: its box, as a polygon), and each mask's height."""
    anns, images = index.annotations, index.images
    image_rows = anns["image_row"][rows]
    heights, widths = images["height"][image_rows], images["width"][image_rows]
    rles = annotation_rles(index, rows)
    for i in [i for i, rle in enumerate(rles) if rle is None]:
        h, w = max(int(heights[i]), 1), max(int(widths[i]), 1)
        x, y, bw, bh = anns["bbox"][rows[i]].tolist()
        box = [[x, y, x, y + bh, x + bw, y + bh, x + bw, y]]
        rles[i] = mask_utils.merge(mask_utils.frPyObjects(box, h, w))
    runs, starts = _rle.decode_strings([rle["counts"] for rle in rles])  # type: ignore[index]
    return runs, starts, np.maximum(heights, 1).astype(np.int64)


class KeypointOverlap:
    """``keypoints``: COCO's object keypoint similarity. A person without labelled keypoints is
    ignored (``num_keypoints`` 0; missing counts as 0, as faster-coco-eval reads it)."""

    summary = KEYPOINT_SUMMARY

    def ignored(self, sides: Sides) -> np.ndarray:
        counts = sides.index.annotations["num_keypoints"][sides.layout.gt_rows]
        return _crowd(sides) | (counts <= 0)

    def ious(self, sides: Sides, blocks: Blocks) -> np.ndarray:
        lay, det_points = sides.layout, sides.detections.keypoints
        if det_points is None:
            raise ExplorerError("keypoints evaluation needs results with keypoints")
        pd, pg = blocks.pairs()
        rows = lay.gt_rows[pg]
        sigmas = sides.params.keypoint_sigmas
        needed = np.unique(pg)  # decoded once each, only those that meet a detection
        gt = sides.index.keypoints(lay.gt_rows[needed], k=len(sigmas))[np.searchsorted(needed, pg)]
        dt = det_points[lay.dt_rows[pd]]
        if gt.shape[1] != 3 * len(sigmas) or dt.shape[1] != gt.shape[1]:
            raise ExplorerError(
                f"keypoints evaluation: {gt.shape[1] // 3} keypoints per person in the dataset, "
                f"{dt.shape[1] // 3} in the results, {len(sigmas)} sigmas"
            )
        anns = sides.index.annotations
        return _oks(gt, dt, anns["bbox"][rows], anns["area"][rows], sigmas)


def _oks(
    gt: np.ndarray, dt: np.ndarray, box: np.ndarray, area: np.ndarray, sigmas: np.ndarray
) -> np.ndarray:
    """computeOks per pair: e = (dx² + dy²) / vars / (area + eps) / 2 over the labelled
    keypoints (all of them, measured to the box grown by its size, when none is labelled);
    OKS = mean of exp(-e)."""
    xg, yg, vg = gt[:, 0::3], gt[:, 1::3], gt[:, 2::3]
    xd, yd = dt[:, 0::3], dt[:, 1::3]
    labelled = vg > 0
    some = np.any(labelled, axis=1).reshape(-1, 1)
    x0, x1 = (box[:, 0] - box[:, 2])[:, None], (box[:, 0] + box[:, 2] * 2)[:, None]
    y0, y1 = (box[:, 1] - box[:, 3])[:, None], (box[:, 1] + box[:, 3] * 2)[:, None]
    zero = np.zeros_like(xd)
    dx = np.where(some, xd - xg, np.maximum(zero, x0 - xd) + np.maximum(zero, xd - x1))
    dy = np.where(some, yd - yg, np.maximum(zero, y0 - yd) + np.maximum(zero, yd - y1))
    variances = (sigmas * 2) ** 2
    e = (dx**2 + dy**2) / variances / (area[:, None] + np.spacing(1)) / 2
    kept = np.where(some, labelled, True)
    return _mean_of_kept(np.exp(-e), kept)


def _mean_of_kept(values: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Per row, the mean of its kept entries, summed as numpy sums a 1-D array of them: its
    pairwise summation depends on the length, so rows are grouped by how many they keep (a
    contiguous row sum along the last axis is that same summation, bit for bit)."""
    front = np.argsort(~kept, axis=1, kind="stable")  # kept entries first, in order
    packed = np.take_along_axis(values, front, axis=1)
    counts = kept.sum(axis=1)
    out = np.zeros(len(values))
    for n in np.unique(counts).tolist():  # at most one group per keypoint count
        rows = np.flatnonzero(counts == n)
        block = np.ascontiguousarray(packed[rows, :n])
        out[rows] = np.sum(block, axis=1) / n if n else np.nan
    return out


OVERLAPS: MappingProxyType[IouType, Overlap] = MappingProxyType(
    {"bbox": BoxOverlap(), "segm": MaskOverlap(), "keypoints": KeypointOverlap()}
)
