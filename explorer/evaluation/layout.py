"""Which ground truths and detections meet: pycocotools' (category, image) buckets, columnar.

pycocotools keeps one dict list per (image, category) and loops over them in Python. Here both
sides are sorted once by bucket (category, then image, both ascending), detections by descending
score within a bucket (a stable sort: ties keep file order, as pycocotools' mergesort does) and
cut to the largest maxDet; every bucket then is a pair of slices, and its IoU block a slice of
one flat array.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.evaluation.params import EvalParams

if TYPE_CHECKING:
    from explorer.predictions.results import Detections


@dataclass(frozen=True)
class Layout:
    """Both sides of an evaluation, sorted into buckets.

    Attributes:
        image_ids, category_ids: what is evaluated (sorted); positions in them are the
            images' and categories' indices below.
        gt_rows: the evaluated annotations' rows in ``index.annotations``, by bucket, in file order.
        gt_category, gt_image: each of those annotations' category and image index.
        dt_rows: the evaluated detections' rows in the :class:`Detections`, by bucket, by score.
        dt_category, dt_image, dt_score: each of those detections' category and image index
            and its score.
        rank: each detection's place in its bucket (0 = its best score).
        g_lo, g_hi, d_lo, d_hi: each bucket's slices of ``gt_rows`` and ``dt_rows``.
        iou_at: where each bucket's ``nd x ng`` IoU block starts in the flat IoU array.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    gt_rows: np.ndarray
    gt_category: np.ndarray
    gt_image: np.ndarray
    dt_rows: np.ndarray
    dt_category: np.ndarray
    dt_image: np.ndarray
    dt_score: np.ndarray
    rank: np.ndarray
    g_lo: np.ndarray
    g_hi: np.ndarray
    d_lo: np.ndarray
    d_hi: np.ndarray
    iou_at: np.ndarray

    @property
    def blocks(self) -> Blocks:
        """Its buckets' pairs: what the flat IoU array holds, in that order."""
        return Blocks(
            dt=np.arange(len(self.dt_rows)),
            gt=np.arange(len(self.gt_rows)),
            d_lo=self.d_lo,
            d_hi=self.d_hi,
            g_lo=self.g_lo,
            g_hi=self.g_hi,
        )


# what one chunk of overlaps holds at most (about): pairs (8 bytes of IoU each, and what a kind
# computes per pair) and members (decoded masks: runs of tens of MB per 40k)
CHUNK_PAIRS, CHUNK_MEMBERS = 4_000_000, 40_000


@dataclass(frozen=True)
class Blocks:
    """(detection, ground truth) pairs as full cross products, flattened: block ``b`` pairs
    ``dt[d_lo[b]:d_hi[b]]`` with ``gt[g_lo[b]:g_hi[b]]``, row-major (detections outer), from
    ``at[b]`` on. ``dt`` and ``gt`` index a layout's ``dt_rows`` and ``gt_rows``."""

    dt: np.ndarray
    gt: np.ndarray
    d_lo: np.ndarray
    d_hi: np.ndarray
    g_lo: np.ndarray
    g_hi: np.ndarray

    @cached_property
    def sizes(self) -> np.ndarray:
        return (self.d_hi - self.d_lo) * (self.g_hi - self.g_lo)

    @cached_property
    def at(self) -> np.ndarray:
        return np.cumsum(self.sizes) - self.sizes

    @property
    def num_pairs(self) -> int:
        return int(self.sizes.sum())

    def for_kernels(self, dt_used: np.ndarray, gt_used: np.ndarray) -> tuple[np.ndarray, ...]:
        """The blocks as the compiled kernels take them, their entries given as positions in
        ``dt_used`` / ``gt_used`` (:meth:`members`: the rows of the kernels' arrays)."""
        dt, gt = np.searchsorted(dt_used, self.dt), np.searchsorted(gt_used, self.gt)
        return (dt, gt, self.d_lo, self.d_hi, self.g_lo, self.g_hi, self.at)

    def members(self) -> tuple[np.ndarray, np.ndarray]:
        """The entries of ``dt`` and of ``gt`` some block pairs (sorted, unique)."""
        return _members(self.dt, self.d_lo, self.d_hi), _members(self.gt, self.g_lo, self.g_hi)

    def chunks(
        self, pairs: int | None = None, members: int | None = None
    ) -> Iterator[tuple[int, Blocks]]:
        """Runs of whole blocks of at most about ``pairs`` pairs and ``members`` detections and
        ground truths (a single block may be more), each with where its pairs start in the whole
        flattened order: what bounds the memory of the overlaps' arrays (pairs; decoded masks)."""
        pairs = CHUNK_PAIRS if pairs is None else pairs
        members = CHUNK_MEMBERS if members is None else members
        ends = np.cumsum(self.sizes)
        held = np.cumsum((self.d_hi - self.d_lo) + (self.g_hi - self.g_lo))
        start = 0
        while start < len(self.sizes):
            base = int(ends[start] - self.sizes[start])
            base_held = int(held[start - 1]) if start else 0
            stop = min(
                int(np.searchsorted(ends, base + pairs, "right")),
                int(np.searchsorted(held, base_held + members, "right")),
            )
            stop = max(stop, start + 1)
            yield (
                base,
                replace(
                    self,
                    d_lo=self.d_lo[start:stop],
                    d_hi=self.d_hi[start:stop],
                    g_lo=self.g_lo[start:stop],
                    g_hi=self.g_hi[start:stop],
                ),
            )
            start = stop

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Every pair as positions in ``dt`` and ``gt``, in the flattened order."""
        bucket = np.repeat(np.arange(len(self.sizes)), self.sizes)
        place = np.arange(len(bucket)) - self.at[bucket]
        ng = (self.g_hi - self.g_lo)[bucket]
        row = place // np.maximum(ng, 1)
        return self.d_lo[bucket] + row, self.g_lo[bucket] + (place - row * ng)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every pair as (detection, ground truth), in the flattened order."""
        d, g = self.positions()
        return self.dt[d], self.gt[g]


def _members(items: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The entries of the slices ``items[lo:hi]`` that hold something (sorted, unique)."""
    live = hi > lo
    depth = np.zeros(len(items) + 1, np.int64)
    np.add.at(depth, lo[live], 1)
    np.add.at(depth, hi[live], -1)
    return np.unique(items[np.cumsum(depth)[:-1] > 0])


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Each id's index in ``wanted`` (sorted), -1 where it is not there."""
    at = np.searchsorted(wanted, ids)
    found = at < len(wanted)
    found[found] = wanted[at[found]] == ids[found]
    return np.where(found, at, -1)


def layout(index: CocoIndex, detections: Detections, params: EvalParams) -> Layout:
    """Sort both sides into buckets for ``params`` (see :class:`Layout`)."""
    anns = index.annotations
    image_ids = np.unique(index.images["id"]) if params.image_ids is None else params.image_ids
    category_ids = (
        np.unique(index.category_ids) if params.category_ids is None else params.category_ids
    )
    n_img = len(image_ids)
    g_img = _positions(anns["image_id"], image_ids)
    g_cat = _positions(anns["category_id"], category_ids)
    gt_rows = np.flatnonzero((g_img >= 0) & (g_cat >= 0))
    g_key = g_cat[gt_rows] * n_img + g_img[gt_rows]
    in_order = np.argsort(g_key, kind="stable")
    gt_rows, g_key = gt_rows[in_order], g_key[in_order]

    d_img = _positions(detections.image_id, image_ids)
    d_cat = _positions(detections.category_id, category_ids)
    dt_rows = np.flatnonzero((d_img >= 0) & (d_cat >= 0))
    d_key = d_cat[dt_rows] * n_img + d_img[dt_rows]
    in_order = np.lexsort((-detections.score[dt_rows], d_key))
    dt_rows, d_key = dt_rows[in_order], d_key[in_order]
    rank = np.arange(len(d_key)) - np.searchsorted(d_key, d_key)
    kept = rank < max(params.max_dets)
    dt_rows, d_key, rank = dt_rows[kept], d_key[kept], rank[kept]

    keys = np.union1d(g_key, d_key)
    g_lo, g_hi = np.searchsorted(g_key, keys), np.searchsorted(g_key, keys, "right")
    d_lo, d_hi = np.searchsorted(d_key, keys), np.searchsorted(d_key, keys, "right")
    sizes = (d_hi - d_lo) * (g_hi - g_lo)
    return Layout(
        image_ids=image_ids,
        category_ids=category_ids,
        gt_rows=gt_rows,
        gt_category=g_key // max(n_img, 1),
        gt_image=g_key % max(n_img, 1),
        dt_rows=dt_rows,
        dt_category=d_key // max(n_img, 1),
        dt_image=d_key % max(n_img, 1),
        dt_score=detections.score[dt_rows],
        rank=rank,
        g_lo=g_lo,
        g_hi=g_hi,
        d_lo=d_lo,
        d_hi=d_hi,
        iou_at=np.cumsum(sizes) - sizes,
    )
