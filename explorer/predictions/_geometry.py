"""Masks and keypoints of results records, checked and converted as pycocotools reads them.

A segmentation becomes pycocotools' compressed RLE at its image's size: a compressed RLE is kept
as written (``COCOeval`` uses it as is), an uncompressed one is compressed with ``frPyObjects``
and polygons are rasterised with ``frPyObjects`` and merged (``COCO.annToRLE``). Nothing reaches
pycocotools unchecked, as its C code trusts its input: polygons go through
``coco.segmentations.polygon_parts``; RLE counts must be run lengths covering the image exactly.
Compressed counts are checked for a whole span at once (:func:`compressed_counts_ok`), with
pycocotools' own decoding (``rleFrString``) compiled by numba.
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np
from pycocotools import mask as mask_utils

from explorer.coco._schema import RleHead
from explorer.coco.segmentations import polygon_parts
from explorer.predictions._records import (
    BAD_POLYGON,
    BAD_RLE,
    BAD_SEGMENTATION,
    CODE,
    RLE_SIZE,
    UNKNOWN_SIZE,
)

ABSENT = -1  # a segmentation status: the record gives none (missing, null or [])
_RLES = msgspec.json.Decoder(list[RleHead])
_RLE = msgspec.json.Decoder(RleHead)
# A number of compressed counts takes at most 7 characters of 5 bits: 35 bits hold any run of
# an image of at most 65535 x 65535 pixels, and longer groups would overflow int64 below.
# pycocotools 2.0.11's ``area`` fails on numpy 2 for 256 RLEs or more in one call (it builds a
# throwaway ``np.array((n,), dtype=np.uint8)``): it is called on batches of fewer.
_AREA_BATCH = 255


def segmentation_rles(
    raws: list[msgspec.Raw], heights: np.ndarray, widths: np.ndarray
) -> tuple[list[bytes], np.ndarray]:
    """Each raw segmentation as compressed RLE counts at its image's ``heights x widths``.

    Returns ``(counts, status)``: ``status`` is 0 where ``counts`` holds the RLE, ABSENT where
    the record gives no segmentation, else the code (``_records.CODE``) of why it is unusable.
    """
    n = len(raws)
    counts, status = [b""] * n, np.zeros(n, np.int16)
    first = np.fromiter((memoryview(r)[0] if len(r) else 110 for r in raws), np.uint8, n)
    empty = np.fromiter((bytes(r).strip() == b"[]" for r in raws), bool, n)
    status[(first == ord("n")) | empty] = ABSENT
    status[(status == 0) & ((first != ord("{")) & (first != ord("[")))] = CODE[BAD_SEGMENTATION]
    status[(status == 0) & ((heights == 0) | (widths == 0))] = CODE[UNKNOWN_SIZE]
    for i in np.flatnonzero((status == 0) & (first == ord("["))).tolist():
        counts[i], status[i] = _polygon_rle(raws[i], int(heights[i]), int(widths[i]))
    rows = np.flatnonzero((status == 0) & (first == ord("{")))
    rle_counts, status[rows] = _rles([raws[i] for i in rows.tolist()], heights[rows], widths[rows])
    for i, c in zip(rows.tolist(), rle_counts, strict=True):
        counts[i] = c
    return counts, status


def _polygon_rle(raw: msgspec.Raw, height: int, width: int) -> tuple[bytes, int]:
    try:
        parts = polygon_parts(bytes(raw), height, width)
    except ValueError:
        return b"", CODE[BAD_POLYGON]
    rle = mask_utils.merge(mask_utils.frPyObjects(parts, height, width))
    return rle["counts"], 0


def _rles(
    raws: list[msgspec.Raw], heights: np.ndarray, widths: np.ndarray
) -> tuple[list[bytes], np.ndarray]:
    """:func:`segmentation_rles` of RLE segmentations (objects)."""
    n = len(raws)
    counts, status = [b""] * n, np.zeros(n, np.int16)
    heads = _rle_heads(raws)
    sizes = np.array([h.size if h is not None else (-1, -1) for h in heads], np.int64).reshape(
        -1, 2
    )
    status[np.array([h is None for h in heads], bool)] = CODE[BAD_RLE]
    wrong = (status == 0) & ((sizes[:, 0] != heights) | (sizes[:, 1] != widths))
    status[wrong] = CODE[RLE_SIZE]
    texts: list[bytes] = []
    text_rows = []
    for i in np.flatnonzero(status == 0).tolist():
        runs = heads[i].counts  # type: ignore[union-attr]  # status 0: decoded
        if isinstance(runs, str):
            texts.append(runs.encode())
            text_rows.append(i)
            continue
        h, w = int(heights[i]), int(widths[i])
        if sum(runs) == h * w:  # uncompressed: a list of run lengths
            counts[i] = mask_utils.frPyObjects({"size": [h, w], "counts": runs}, h, w)["counts"]
        else:
            status[i] = CODE[BAD_RLE]
    at = np.array(text_rows, np.int64)
    ok = compressed_counts_ok(texts, heights[at] * widths[at])
    status[at[~ok]] = CODE[BAD_RLE]
    for i, text, good in zip(text_rows, texts, ok.tolist(), strict=True):
        if good:
            counts[i] = text
    return counts, status


def _rle_heads(raws: list[msgspec.Raw]) -> list[RleHead | None]:
    """The RLEs decoded in one call, or one by one when one does not fit (None for it)."""
    try:
        return list(_RLES.decode(b"[" + b",".join(raws) + b"]"))
    except msgspec.DecodeError:  # ValidationError included
        pass
    heads: list[RleHead | None] = []
    for raw in raws:
        try:
            heads.append(_RLE.decode(raw))
        except msgspec.DecodeError:
            heads.append(None)
    return heads


def compressed_counts_ok(blobs: list[bytes], areas: np.ndarray) -> np.ndarray:
    """Whether each compressed RLE string decodes, as pycocotools' ``rleFrString`` does, into
    run lengths that are all non-negative and sum to exactly ``areas`` (height x width): what
    makes it safe for pycocotools' C code, which trusts its input (``coco.rle.decode_checked``,
    compiled; numba is imported only when there are strings to check)."""
    if not blobs:
        return np.zeros(0, bool)
    from explorer.coco import rle

    lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
    ends = np.cumsum(lengths)
    chars = np.frombuffer(b"".join(blobs), np.uint8)
    return rle.decode_checked(chars, ends - lengths, ends, np.asarray(areas, np.int64))[2]


def areas_and_boxes(strings: list[bytes], heights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' ``maskUtils.area`` (as float64) and ``maskUtils.toBbox`` of compressed RLE
    strings (checked ones), computed by the same C code ported (``explorer.coco.rle``) in one
    pass instead of through a list of dicts."""
    if not strings:
        return np.zeros(0), np.zeros((0, 4))
    from explorer.coco import rle

    runs, starts = rle.decode_strings(strings)
    return rle.areas(runs, starts).astype(np.float64), rle.boxes(runs, starts, heights)


def keypoint_matrix(lists: list, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keypoint lists as an ``(n, max(expected))`` float64 matrix (NaN past a row's own
    length), and whether each row is given with its ``expected`` length, all finite."""
    n = len(lists)
    lengths = np.fromiter((len(v) if v is not None else -1 for v in lists), np.int64, n)
    width = int(expected.max()) if n else 0
    ok = lengths == expected
    out = np.full((n, width), np.nan)
    if ok.all() and (expected == width).all():
        out = np.fromiter(itertools.chain.from_iterable(lists), np.float64, n * width)
        out = out.reshape(n, width)
    else:
        for i in np.flatnonzero(ok).tolist():
            out[i, : lengths[i]] = lists[i]
    ok &= np.isfinite(out).sum(1) == np.maximum(lengths, 0)
    return out, ok


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """loadRes' box of keypoint results: the extent of all x and all y entries (unlabelled
    zeros included), as ``[x0, y0, x1 - x0, y1 - y0]``."""
    x, y = keypoints[:, 0::3], keypoints[:, 1::3]
    x0, x1 = np.fmin.reduce(x, axis=1), np.fmax.reduce(x, axis=1)
    y0, y1 = np.fmin.reduce(y, axis=1), np.fmax.reduce(y, axis=1)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
