"""The two sequential parts of COCOeval, compiled: greedy matching and the precision curves.

Both follow pycocotools' ``evaluateImg`` and ``accumulate`` statement by statement (the same
comparisons, the same float64 operations in the same order), so every number is bit-identical;
what changes is that they run over all (category, image) buckets in one compiled call instead of
millions of Python calls. The matching is greedy and order-dependent, so it stays a loop; the
loop just is not Python.

Layout: ground truths and detections are sorted by bucket (category, then image); each bucket
``b`` owns ``gt[g_lo[b]:g_hi[b]]`` (file order), ``dt[d_lo[b]:d_hi[b]]`` (by descending score,
ties in file order, cut to the largest maxDet) and the row-major ``nd x ng`` block of ``ious``
at ``iou_at[b]`` (rows: detections in that order; columns: ground truths in file order).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from explorer.coco.rle import box_overlap

# detection states per (area range, threshold): pycocotools' dtIgnore / dtMatches turned into one
# code (ignored dets are neither TP nor FP)
FALSE_POSITIVE, TRUE_POSITIVE, IGNORED = 0, 1, 2
LAST_BELOW_ONE = 1 - 1e-10


@njit(cache=True, nogil=True)
def match(  # noqa: PLR0913  (one compiled call takes the whole layout: see the module doc)
    g_lo, g_hi, d_lo, d_hi, iou_at, ious,
    gt_ignore, gt_crowd, gt_area, gt_id, dt_area,
    area_ranges, iou_thresholds,
):  # fmt: skip
    """Greedy matching of every bucket at every area range and threshold (``evaluateImg``).

    Returns ``state`` (areas x thresholds x detections, int8: FALSE_POSITIVE, TRUE_POSITIVE or
    IGNORED), ``gt_ignored`` (areas x ground truths: pycocotools' ``gtIgnore``), and for the
    first area range the matches: ``dt_match`` (thresholds x detections: the ground truth's
    index or -1) and ``gt_match`` (thresholds x ground truths: the detection's index or -1).
    """
    n_area, n_thr = area_ranges.shape[0], iou_thresholds.shape[0]
    n_gt, n_dt = gt_area.shape[0], dt_area.shape[0]
    state = np.full((n_area, n_thr, n_dt), FALSE_POSITIVE, np.int8)
    gt_ignored = np.zeros((n_area, n_gt), np.bool_)
    dt_match = np.full((n_thr, n_dt), -1, np.int64)
    gt_match = np.full((n_thr, n_gt), -1, np.int64)
    floor = min(iou_thresholds.min(), LAST_BELOW_ONE)
    sizes = (d_hi - d_lo) * (g_hi - g_lo)
    candidates = np.empty(max(sizes.max(), 1) if sizes.shape[0] else 1, np.int64)
    for b in range(g_lo.shape[0]):
        g0, ng, nd = g_lo[b], g_hi[b] - g_lo[b], d_hi[b] - d_lo[b]
        order = np.empty(ng, np.int64)
        taken = np.empty(ng, np.bool_)
        starts = np.empty(nd + 1, np.int64)
        block = ious[iou_at[b] : iou_at[b] + nd * ng]
        for a in range(n_area):
            _ignored_last(g0, ng, area_ranges[a], gt_ignore, gt_area, gt_ignored[a], order)
            _candidates(block, nd, ng, order, floor, candidates, starts)
            for t in range(n_thr):
                taken[:] = False
                for i in range(nd):
                    d = d_lo[b] + i
                    best = min(iou_thresholds[t], LAST_BELOW_ONE)
                    m = -1
                    for c in range(starts[i], starts[i + 1]):
                        j = candidates[c]
                        if taken[j] and not gt_crowd[g0 + j]:
                            continue
                        if m > -1 and not gt_ignored[a, g0 + m] and gt_ignored[a, g0 + j]:
                            break
                        if block[i * ng + j] < best:
                            continue
                        best = block[i * ng + j]
                        m = j
                    _record(a, t, d, m, g0, state, gt_ignored, gt_id, dt_area, area_ranges)
                    if m > -1:
                        taken[m] = True
                        if a == 0:
                            dt_match[t, d] = g0 + m
                            gt_match[t, g0 + m] = d
    return state, gt_ignored, dt_match, gt_match


@njit(cache=True, nogil=True)
def _candidates(block, nd, ng, order, floor, candidates, starts):  # noqa: PLR0913
    """Per detection, the ground truths it could match at any threshold (IoU >= the lowest),
    in the scan order. Scanning only these gives pycocotools' answer: every other one fails its
    ``iou < best`` test, and its ``break`` (a regular match met an ignored one) happens at the
    first ignored candidate instead, after which no candidate could be taken either."""
    n = 0
    for i in range(nd):
        starts[i] = n
        for k in range(ng):
            if block[i * ng + order[k]] >= floor:
                candidates[n] = order[k]
                n += 1
    starts[nd] = n


@njit(cache=True, nogil=True)
def _ignored_last(g0, ng, area_range, gt_ignore, gt_area, ignored_out, order):  # noqa: PLR0913
    """Mark the bucket's ground truths ignored at this area range (``gtIgnore``) and order them
    with the ignored last, file order kept (pycocotools' stable argsort)."""
    k = 0
    for second in range(2):
        for j in range(ng):
            g = g0 + j
            ignored = gt_ignore[g] or gt_area[g] < area_range[0] or gt_area[g] > area_range[1]
            ignored_out[g] = ignored
            if ignored == (second == 1):
                order[k] = j
                k += 1


@njit(cache=True, nogil=True)
def _record(a, t, d, m, g0, state, gt_ignored, gt_id, dt_area, area_ranges):  # noqa: PLR0913
    """One detection's outcome. pycocotools tells a match by the ground truth's id being
    non-zero, so a match to an annotation with id 0 counts as no match (its trap P2)."""
    ignored = m > -1 and gt_ignored[a, g0 + m]
    unmatched = m == -1 or gt_id[g0 + m] == 0
    if unmatched and (dt_area[d] < area_ranges[a, 0] or dt_area[d] > area_ranges[a, 1]):
        ignored = True
    if ignored:
        state[a, t, d] = IGNORED
    elif unmatched:
        state[a, t, d] = FALSE_POSITIVE
    else:
        state[a, t, d] = TRUE_POSITIVE


@njit(cache=True, nogil=True)
def accumulate(  # noqa: PLR0913  (the layout again)
    cat_lo, cat_hi, by_score, rank, score, state, positives, max_dets, recall_thresholds,
):  # fmt: skip
    """pycocotools' ``accumulate``: precision (T x R x K x A x M), recall (T x K x A x M) and
    the scores at the recall thresholds, -1 where a category has no (non-ignored) ground truth.

    ``by_score[cat_lo[k]:cat_hi[k]]`` are category ``k``'s detections by descending score, ties
    in image order then rank (pycocotools' stable sort of the per-image lists); ``rank`` is a
    detection's place in its bucket; ``positives[k, a]`` counts category ``k``'s ground truths
    not ignored at area range ``a`` (-1: the category has neither ground truths nor detections,
    which pycocotools skips too).
    """
    n_area, n_thr = state.shape[0], state.shape[1]
    n_cat, n_rec, n_max = cat_lo.shape[0], recall_thresholds.shape[0], max_dets.shape[0]
    precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_max))
    recall = -np.ones((n_thr, n_cat, n_area, n_max))
    scores = -np.ones((n_thr, n_rec, n_cat, n_area, n_max))
    eps = np.spacing(1.0)
    for k in range(n_cat):
        for a in range(n_area):
            npig = positives[k, a]
            if npig <= 0:  # no evaluated bucket, or none of its ground truths counts
                continue
            for m in range(n_max):
                dets = by_score[cat_lo[k] : cat_hi[k]]
                dets = dets[rank[dets] < max_dets[m]]
                nd = dets.shape[0]
                for t in range(n_thr):
                    tp = np.zeros(nd)
                    fp = np.zeros(nd)
                    tps, fps = 0, 0
                    for i in range(nd):
                        s = state[a, t, dets[i]]
                        tps += s == TRUE_POSITIVE
                        fps += s == FALSE_POSITIVE
                        tp[i], fp[i] = tps, fps
                    rc = tp / npig
                    pr = tp / (fp + tp + eps)
                    recall[t, k, a, m] = rc[nd - 1] if nd else 0.0
                    for i in range(nd - 1, 0, -1):
                        if pr[i] > pr[i - 1]:
                            pr[i - 1] = pr[i]
                    for r in range(n_rec):
                        j = np.searchsorted(rc, recall_thresholds[r])  # side="left"
                        if j >= nd:  # pycocotools' bare except: the rest stay 0
                            for rr in range(r, n_rec):
                                precision[t, rr, k, a, m] = 0.0
                                scores[t, rr, k, a, m] = 0.0
                            break
                        precision[t, r, k, a, m] = pr[j]
                        scores[t, r, k, a, m] = score[dets[j]]
    return precision, recall, scores


@njit(cache=True, nogil=True)
def block_box_ious(dt_box, gt_box, crowd, blocks, out):
    """Box IoU of every pair of ``blocks`` (``dt, gt, d_lo, d_hi, g_lo, g_hi, at``: see
    ``layout.Blocks``; ``dt``/``gt`` index the box arrays) into ``out``, computed as
    ``maskApi.c:bbIou`` computes it (w, h, i = w*h, u = da + ga - i, or da on a crowd)."""
    dt, gt, d_lo, d_hi, g_lo, g_hi, at = blocks
    for b in range(d_lo.shape[0]):
        ng = g_hi[b] - g_lo[b]
        for i in range(d_lo[b], d_hi[b]):
            for j in range(g_lo[b], g_hi[b]):
                k = at[b] + (i - d_lo[b]) * ng + (j - g_lo[b])
                out[k] = box_iou(dt_box[dt[i]], gt_box[gt[j]], crowd[gt[j]])


@njit(cache=True, nogil=True)
def pair_box_ious(a, b, crowd):
    """Box IoU of each pair of rows of ``a`` and ``b`` (see :func:`box_iou`)."""
    out = np.empty(a.shape[0])
    for k in range(a.shape[0]):
        out[k] = box_iou(a[k], b[k], crowd[k])
    return out


@njit(cache=True, nogil=True)
def box_iou(a, b, crowd):
    """IoU of detection box ``a`` and ground-truth box ``b`` (x y w h) as ``maskApi.c:bbIou``
    computes it: w, h, i = w*h, u = da + ga - i (da on a crowd), in that order."""
    w, h = box_overlap(a, b)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = a[2] * a[3] if crowd else a[2] * a[3] + b[2] * b[3] - inter
    return inter / union
