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


@njit(cache=True, nogil=True)
def decode(chars, lo, hi):
    """The strings ``chars[lo[i]:hi[i]]`` (``rleFrString``) as run lengths: string ``i``'s
    runs are ``runs[starts[i]:starts[i+1]]`` (int64)."""
    n = lo.shape[0]
    total = 0
    for r in range(n):
        total += hi[r] - lo[r]
    runs = np.empty(total, np.int64)  # at most one run per character
    starts = np.zeros(n + 1, np.int64)
    m = 0
    for r in range(n):
        p, stop, first = lo[r], hi[r], m
        while p < stop:
            x, k, more = np.int64(0), 0, True
            while more and p < stop:
                c = np.int64(chars[p]) - 48
                x |= (c & 0x1F) << (5 * k)
                more = (c & 0x20) != 0
                p += 1
                k += 1
                if not more and (c & 0x10) != 0:
                    x |= np.int64(-1) << (5 * k)
            if m - first > 2:
                x += runs[m - 2]
            runs[m] = x
            m += 1
        starts[r + 1] = m
    return runs[:m], starts


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
def _intersection(runs_a, runs_b):
    """(intersection, union) of two masks of the same size, run by run (``rleIou``'s loop)."""
    ka, kb = runs_a.shape[0], runs_b.shape[0]
    ca, cb = runs_a[0], runs_b[0]
    va, vb = False, False
    a, b, i, u, ct = 1, 1, 0, 0, 1
    while ct > 0:
        c = min(ca, cb)
        if va or vb:
            u += c
            if va and vb:
                i += c
        ct = 0
        ca -= c
        if not ca and a < ka:
            ca, a, va = runs_a[a], a + 1, not va
        ct += ca
        cb -= c
        if not cb and b < kb:
            cb, b, vb = runs_b[b], b + 1, not vb
        ct += cb
    return i, u


@njit(cache=True, nogil=True)
def pair_ious(pd, pg, dt_runs, dt_starts, dt_box, gt_runs, gt_starts, gt_box, crowd):  # noqa: PLR0913
    """IoU of each pair (``pd[k]``-th detection mask, ``pg[k]``-th ground truth mask): 0 when
    their boxes do not overlap; a crowd's union is the detection's own area."""
    out = np.zeros(pd.shape[0])
    for k in range(pd.shape[0]):
        d, g = pd[k], pg[k]
        w = min(dt_box[d, 2] + dt_box[d, 0], gt_box[g, 2] + gt_box[g, 0]) - max(
            dt_box[d, 0], gt_box[g, 0]
        )
        h = min(dt_box[d, 3] + dt_box[d, 1], gt_box[g, 3] + gt_box[g, 1]) - max(
            dt_box[d, 1], gt_box[g, 1]
        )
        if w <= 0 or h <= 0:
            continue
        ra = dt_runs[dt_starts[d] : dt_starts[d + 1]]
        rb = gt_runs[gt_starts[g] : gt_starts[g + 1]]
        if ra.shape[0] == 0 or rb.shape[0] == 0:
            continue
        i, u = _intersection(ra, rb)
        if i == 0:
            u = 1
        elif crowd[g]:
            u = 0
            for j in range(1, ra.shape[0], 2):
                u += ra[j]
        out[k] = np.float64(i) / np.float64(u)
    return out
