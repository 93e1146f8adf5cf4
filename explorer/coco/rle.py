"""Many RLE masks at once, compiled: pycocotools' ``maskApi.c`` ported (decode, area, box, IoU).

pycocotools computes mask IoU in C but is called once per (image, category) bucket from Python,
each call turning its RLE dicts into C structures again; on val2017 that Python side is most of
the time. Here the compressed strings are decoded once (``rleFrString``), each mask's box is
taken once (``rleToBbox``, the corrected version pycocotools 2.0.11 ships) and every pair of
every block is intersected run by run (``rleIou``) in one loop. The arithmetic is integers until
the final ``(double) i / (double) u``, so every IoU is pycocotools' to the last bit; pairs whose
boxes do not overlap are 0 without being intersected, as in ``rleIou``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def decode_strings(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Compressed RLE strings as run lengths: string ``i``'s runs are
    ``runs[starts[i]:starts[i+1]]`` (int64)."""
    lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
    ends = np.cumsum(lengths)
    return decode(np.frombuffer(b"".join(blobs), np.uint8), ends - lengths, ends)


MAX_GROUP = 7  # characters of one number: 35 bits, beyond any count of an image's pixels


def decode(chars: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The strings ``chars[lo[i]:hi[i]]`` (``rleFrString``, trusted: checked before) as run
    lengths: string ``i``'s runs are ``runs[starts[i]:starts[i+1]]`` (int64)."""
    runs, starts, _ = decode_checked(chars, lo, hi, np.full(len(lo), -1, np.int64))
    return runs, starts


@njit(cache=True, nogil=True)
def decode_checked(chars, lo, hi, areas):
    """:func:`decode`, and whether each string is a mask pycocotools' C code may be given (it
    trusts its input): every number whole and of at most ``MAX_GROUP`` characters from "0"
    (48) to "o" (111), every count (each from the fourth on a delta from the count two before)
    non-negative, the counts summing to ``areas[i]`` (height x width)."""
    n = lo.shape[0]
    total = n  # a number ends at each character without the "more" bit (0x20); + a cut one
    for r in range(n):
        for p in range(lo[r], hi[r]):
            total += ((np.int64(chars[p]) - 48) & 0x20) == 0
    runs = np.empty(total, np.int64)
    starts = np.zeros(n + 1, np.int64)
    ok = np.zeros(n, np.bool_)
    m = 0
    for r in range(n):
        p, stop, first = lo[r], hi[r], m
        good, area = p < stop, np.int64(0)
        while good and p < stop:
            x, k, more = np.int64(0), 0, True
            while more:
                c = np.int64(chars[p]) - 48 if p < stop and k < MAX_GROUP else np.int64(-1)
                if c < 0 or c > 63:
                    good = False
                    break
                x |= (c & 0x1F) << (5 * k)
                more = (c & 0x20) != 0
                p += 1
                k += 1
                if not more and (c & 0x10) != 0:
                    x |= np.int64(-1) << (5 * k)
            if not good:
                break
            if m - first > 2:
                x += runs[m - 2]
            good = x >= 0
            runs[m] = x
            m += 1
            area += x
        starts[r + 1] = m
        ok[r] = good and area == areas[r]
    return runs[:m], starts, ok


@njit(cache=True, nogil=True)
def areas(runs, starts):
    """``rleArea`` of each mask (its foreground pixels: the odd runs), int64."""
    n = starts.shape[0] - 1
    out = np.zeros(n, np.int64)
    for i in range(n):
        for j in range(starts[i] + 1, starts[i + 1], 2):
            out[i] += runs[j]
    return out


@njit(cache=True, nogil=True)
def boxes(runs, starts, heights):
    """``rleToBbox`` of each mask: x y w h (float64)."""
    n = starts.shape[0] - 1
    out = np.zeros((n, 4))
    for i in range(n):
        h = heights[i]
        m = (starts[i + 1] - starts[i]) // 2 * 2
        if m == 0:
            continue
        xs, ys, xe, ye, cc, xp = np.int64(1) << 62, h, 0, 0, 0, 0
        for j in range(m):
            cc += runs[starts[i] + j]
            t = cc - j % 2
            y = t % h
            x = (t - y) // h
            if j % 2 == 0:
                xp = x
            elif xp < x:
                ys, ye = 0, h - 1
            xs, xe, ys, ye = min(xs, x), max(xe, x), min(ys, y), max(ye, y)
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = xs, ys, xe - xs + 1, ye - ys + 1
    return out


@njit(cache=True, nogil=True)
def box_overlap(a, b):
    """``bbIou``'s ``w`` and ``h`` of boxes ``a`` and ``b`` (x y w h), in its operation order."""
    w = min(a[2] + a[0], b[2] + b[0]) - max(a[0], b[0])
    h = min(a[3] + a[1], b[3] + b[1]) - max(a[1], b[1])
    return w, h


def masks(runs: np.ndarray, starts: np.ndarray, heights: np.ndarray) -> tuple[np.ndarray, ...]:
    """What :func:`block_mask_ious` takes of a set of masks: runs, starts, each run's end
    (pixels from the mask's start), each mask's box and area."""
    return runs, starts, run_ends(runs, starts), boxes(runs, starts, heights), areas(runs, starts)


@njit(cache=True, nogil=True)
def run_ends(runs, starts):
    """Where each run ends (column-major pixel index, exclusive) within its own mask."""
    out = np.empty_like(runs)
    for i in range(starts.shape[0] - 1):
        total = 0
        for j in range(starts[i], starts[i + 1]):
            total += runs[j]
            out[j] = total
    return out


@njit(cache=True, nogil=True)
def _shared(ends_a, ends_b, lo, hi):
    """Foreground pixels two masks share among pixels ``[lo, hi)`` (column-major), walking
    their runs from the one holding ``lo`` (a binary search): the intersection ``rleIou``
    counts, when ``[lo, hi)`` covers the columns both boxes span."""
    ia, ib = np.searchsorted(ends_a, lo, "right"), np.searchsorted(ends_b, lo, "right")
    shared, p = 0, lo
    while p < hi and ia < ends_a.shape[0] and ib < ends_b.shape[0]:
        nxt = min(ends_a[ia], ends_b[ib], hi)
        if ia % 2 == 1 and ib % 2 == 1:  # odd runs are foreground
            shared += nxt - p
        p = nxt
        if p == ends_a[ia]:
            ia += 1
        if p == ends_b[ib]:
            ib += 1
    return shared


@njit(cache=True, nogil=True)
def mask_iou(a, b, height, crowd, exact_from):
    """``rleIou`` of one pair (``a``, ``b``: (run ends, box, area) of each): 0 when the boxes
    do not overlap; a crowd's union is the detection's own area. The intersection is counted
    over the columns both boxes span only, and the union is ``area_a + area_b - i``: the same
    integers ``rleIou``'s walk over every run counts. When even the boxes' overlap cannot make
    the IoU reach ``exact_from``, that bound is returned instead (below ``exact_from``)."""
    ends_a, box_a, area_a = a
    ends_b, box_b, area_b = b
    w, h = box_overlap(box_a, box_b)
    if w <= 0 or h <= 0 or ends_a.shape[0] == 0 or ends_b.shape[0] == 0:
        return 0.0
    most = min(w * h, np.float64(area_a), np.float64(area_b))  # pixels both could share
    bound = most / (area_a if crowd else area_a + area_b - most)
    if bound < exact_from:
        return bound
    first = max(box_a[0], box_b[0])
    last = min(box_a[0] + box_a[2], box_b[0] + box_b[2])  # exclusive column
    i = _shared(ends_a, ends_b, np.int64(first) * height, np.int64(last) * height)
    if i == 0:
        return 0.0
    u = area_a if crowd else area_a + area_b - i
    return np.float64(i) / np.float64(u)


@njit(cache=True, nogil=True)
def block_mask_ious(masks, blocks, exact_from, out):
    """Mask IoU (:func:`mask_iou`) of every pair of ``blocks`` (``dt, gt, d_lo, d_hi, g_lo,
    g_hi, at``: see ``explorer.evaluation.layout.Blocks``; ``dt``/``gt`` hold positions in the
    masks) into ``out``; ``masks`` is (detections', ground truths' (what :func:`masks` gives),
    the ground truths' heights, their crowd flags)."""
    dt_masks, gt_masks, heights, crowd = masks
    dt, gt, d_lo, d_hi, g_lo, g_hi, at = blocks
    _, dt_starts, dt_ends, dt_box, dt_area = dt_masks
    _, gt_starts, gt_ends, gt_box, gt_area = gt_masks
    for b in range(d_lo.shape[0]):
        ng = g_hi[b] - g_lo[b]
        for i in range(d_lo[b], d_hi[b]):
            d = dt[i]
            for j in range(g_lo[b], g_hi[b]):
                g = gt[j]
                k = at[b] + (i - d_lo[b]) * ng + (j - g_lo[b])
                # bbIou's w and h (box_overlap), on scalars: most pairs stop here
                w = min(dt_box[d, 2] + dt_box[d, 0], gt_box[g, 2] + gt_box[g, 0]) - max(
                    dt_box[d, 0], gt_box[g, 0]
                )
                h = min(dt_box[d, 3] + dt_box[d, 1], gt_box[g, 3] + gt_box[g, 1]) - max(
                    dt_box[d, 1], gt_box[g, 1]
                )
                if w <= 0 or h <= 0:
                    out[k] = 0.0
                    continue
                a = (dt_ends[dt_starts[d] : dt_starts[d + 1]], dt_box[d], dt_area[d])
                other = (gt_ends[gt_starts[g] : gt_starts[g + 1]], gt_box[g], gt_area[g])
                out[k] = mask_iou(a, other, heights[g], crowd[g], exact_from)
