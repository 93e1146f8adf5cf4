"""Keypoints from their raw JSON text: the index keeps where each annotation's ``keypoints`` lie
(``kp_offset``, ``kp_length``), and :func:`keypoint_values` decodes those of many annotations at
once into an (n, 3K) float64 array (x, y, v per keypoint), as pycocotools holds them.

The texts are read in few large reads (annotations lying close together in the file are read
together) and decoded a batch of rows at a time with one msgspec call each: no Python code runs
per annotation, and only one batch's Python lists are alive at a time.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from itertools import chain, compress, repeat
from typing import cast

import msgspec
import numpy as np

from explorer.coco._schema import Int64

# (starts, stops) -> the bytes of each range of the raw text (the file, or the cache's blob)
ReadRanges = Callable[[np.ndarray, np.ndarray], list[bytes]]

BATCH_ROWS = 16384  # rows per msgspec call: about 30 MB of Python floats at 17 keypoints
# texts closer than this are read in one read: a read costs about what copying 50 kB does
READ_GAP = 64 << 10

# Int64 | float: COCO writes integers, which msgspec reads 1.6x faster as ints than as floats
# (an integer past int64 would not fit a float64: the row is malformed)
_BATCH = msgspec.json.Decoder(list[list[Int64 | float] | None])
_ONE = msgspec.json.Decoder(list[Int64 | float] | None)


def keypoint_values(
    read: ReadRanges, offsets: np.ndarray, lengths: np.ndarray, k: int | None = None
) -> np.ndarray:
    """The keypoints of the annotations whose texts lie at ``offsets`` (``lengths``; 0: none
    given), as an (n, 3k) float64 array in their order.

    ``k`` is the number of keypoints per annotation; None: the most common in the data (a COCO
    file has one, its category's), 0 when no annotation has keypoints. A row is NaN where the
    annotation has no keypoints, null, a value that is not a list of numbers, or a list of
    another length than 3k: JSON has no NaN, so ``np.isnan(values).any(axis=1)`` tells them.
    """
    if k is not None and k < 0:
        raise ValueError(f"k: a number of keypoints, not {k}")
    given = np.flatnonzero(lengths > 0)
    order = given[np.argsort(offsets[given], kind="stable")]  # file order: few, large reads
    batches = np.split(order, range(BATCH_ROWS, len(order), BATCH_ROWS))
    parts = [_decoded(read, offsets[rows], lengths[rows]) for rows in batches]
    sizes = np.concatenate([size for _, size in parts])
    width = 3 * k if k is not None else _most_common_width(sizes)
    out = np.full((len(offsets), width), np.nan)
    for rows in batches if width else ():
        flat, size = parts.pop(0)  # each batch's values freed once placed
        fits = size == width
        out[rows[fits]] = flat[np.repeat(fits, np.maximum(size, 0))].reshape(-1, width)
    return out


def _most_common_width(sizes: np.ndarray) -> int:
    """The most common length among the lists of x y v triples (the smallest on a tie)."""
    triples = sizes[(sizes > 0) & (sizes % 3 == 0)]
    if not len(triples):
        return 0
    widths, counts = np.unique(triples, return_counts=True)
    return int(widths[np.argmax(counts)])


def _decoded(
    read: ReadRanges, offsets: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One batch (offsets ascending): every list's values in one flat array, and each row's
    list length (-1: not a list of numbers)."""
    texts = _texts(read, offsets, lengths)
    try:
        lists = _BATCH.decode(b"[" + b",".join(texts) + b"]")
    except msgspec.DecodeError:  # a value that is not a list of numbers: find it row by row
        lists = list(map(_list_or_none, texts))
    is_list = np.fromiter(map(operator.is_not, lists, repeat(None)), bool, len(lists))
    kept = cast(list[list[int | float]], list(compress(lists, is_list)))  # the Nones left out
    sizes = np.full(len(lists), -1, np.int64)
    sizes[is_list] = np.fromiter(map(len, kept), np.int64, len(kept))
    flat = np.fromiter(chain.from_iterable(kept), np.float64, int(sizes[is_list].sum()))
    return flat, sizes


def _list_or_none(text: memoryview) -> list[int | float] | None:
    try:
        return _ONE.decode(text)
    except msgspec.DecodeError:
        return None


def _texts(read: ReadRanges, offsets: np.ndarray, lengths: np.ndarray) -> list[memoryview]:
    """The texts of rows ordered by offset, read as few ranges: a new one starts where the
    gap after the texts before it is above READ_GAP."""
    if not len(offsets):
        return []
    stops = np.maximum.accumulate(offsets + lengths)
    first = np.concatenate([[0], np.flatnonzero(offsets[1:] - stops[:-1] > READ_GAP) + 1])
    last = np.concatenate([first[1:] - 1, [len(offsets) - 1]])
    ranges = read(offsets[first], stops[last])
    # each range's place in the ranges joined, then each text's place there
    base = np.cumsum([0] + [len(r) for r in ranges[:-1]]) - offsets[first]
    starts = offsets + base[np.searchsorted(first, np.arange(len(offsets)), side="right") - 1]
    joined = memoryview(b"".join(ranges))
    return list(map(joined.__getitem__, map(slice, starts.tolist(), (starts + lengths).tolist())))
