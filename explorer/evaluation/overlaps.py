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

from explorer.coco.index import CocoIndex
from explorer.coco.masks import annotation_rle
from explorer.errors import ExplorerError
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


class BoxOverlap:
    """``bbox``: IoU of x y w h boxes; a crowd's union is the detection's own area."""

    summary = DETECTION_SUMMARY

    def ignored(self, sides: Sides) -> np.ndarray:
        return _crowd(sides).copy()

    def ious(self, sides: Sides, blocks: Blocks) -> np.ndarray:
        pd, pg = blocks.pairs()
        dt = sides.detections.bbox[sides.layout.dt_rows[pd]]
        gt = sides.index.annotations["bbox"][sides.layout.gt_rows[pg]]
        crowd = _crowd(sides)[pg]
        # bbIou's statements, in its order: w, h, i = w*h, u = da + ga - i (or da on a crowd)
        w = np.minimum(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
        h = np.minimum(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
        da, ga = dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]
        inter = w * h
        union = np.where(crowd, da, da + ga - inter)
        overlap = (w > 0) & (h > 0)
        out = np.zeros(len(pd))
        out[overlap] = inter[overlap] / union[overlap]
        return out


class MaskOverlap:
    """``segm``: IoU of masks as pycocotools' RLE code computes it (one call per bucket)."""

    summary = DETECTION_SUMMARY

    def ignored(self, sides: Sides) -> np.ndarray:
        return _crowd(sides).copy()

    def ious(self, sides: Sides, blocks: Blocks) -> np.ndarray:
        rles = sides.detections.rles
        if rles is None:
            raise ExplorerError("segm evaluation needs results with segmentations")
        out = np.zeros(blocks.num_pairs)
        crowd = _crowd(sides).astype(np.uint8)
        both = np.flatnonzero(blocks.sizes)
        dt_rles = _indexed(
            blocks.dt, blocks.d_lo[both], blocks.d_hi[both],
            lambda d: rles.rles(sides.layout.dt_rows[d]),
        )  # fmt: skip
        gt_rles = _indexed(
            blocks.gt, blocks.g_lo[both], blocks.g_hi[both],
            lambda g: _ground_truth_rles(sides.index, sides.layout.gt_rows[g]),
        )  # fmt: skip
        for b in both.tolist():
            dts = [dt_rles[i] for i in blocks.dt[blocks.d_lo[b] : blocks.d_hi[b]].tolist()]
            gts = blocks.gt[blocks.g_lo[b] : blocks.g_hi[b]]
            block = mask_utils.iou(dts, [gt_rles[i] for i in gts.tolist()], crowd[gts].tolist())
            out[blocks.at[b] : blocks.at[b] + block.size] = block.ravel()
        return out


def _indexed(items: np.ndarray, lo: np.ndarray, hi: np.ndarray, make) -> dict:
    """``{item: made}`` for the items of the slices ``items[lo:hi]``, made in one call."""
    wanted = np.zeros(len(items) + 1, np.int64)
    np.add.at(wanted, lo, 1)
    np.add.at(wanted, hi, -1)
    keys = np.unique(items[np.cumsum(wanted)[:-1] > 0])
    return dict(zip(keys.tolist(), make(keys), strict=True))


def _ground_truth_rles(index: CocoIndex, rows: np.ndarray) -> list:
    """Each annotation's RLE as pycocotools' ``annToRLE`` makes it; a box-only annotation is
    its box, as a polygon."""
    anns, images = index.annotations, index.images
    out = []
    for row in rows.tolist():
        try:
            out.append(annotation_rle(index, row))
        except ExplorerError:
            image = int(anns["image_row"][row])
            h, w = int(images["height"][image]), int(images["width"][image])
            x, y, bw, bh = anns["bbox"][row].tolist()
            box = [[x, y, x, y + bh, x + bw, y + bh, x + bw, y]]
            out.append(mask_utils.merge(mask_utils.frPyObjects(box, max(h, 1), max(w, 1))))
    return out


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
