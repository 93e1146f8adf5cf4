"""What a segmentation is, and when it is safe to hand to pycocotools.

The instances kind tells each annotation's segmentation kind (``SEG_*``) from its first byte and
checks the cheap cases at index time (:func:`check_segmentations`); ``coco.masks`` checks the rest
(:func:`checked_rle`, :func:`polygon_parts`) before it decodes a mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

import msgspec
import numpy as np

from explorer.coco._records import Problems
from explorer.coco._schema import RleHead

# SEG_BOX: no segmentation (missing, null or []), or an image of unknown size: the annotation
# is counted everywhere but has no instance mask.
SEG_POLYGON, SEG_RLE, SEG_RLE_UNCOMPRESSED, SEG_BOX = 0, 1, 2, 3
# A segmentation that is neither a list nor an object: a kind no decoder knows, so the record is
# skipped. Unrelated to the ignore label (explorer.types.IGNORE_LABEL), which is also 255.
SEG_UNKNOWN = 255
# A polygon point may lie this far outside its image (a multiple of the side, plus a margin):
# pycocotools rasterises the whole extent, so 1e7 costs it 1.2 GB and 1e10 crashes it.
POLYGON_REACH, POLYGON_MARGIN = 4, 16
# Polygons this short are parsed at index time to catch ones with fewer than 3 points; longer
# ones cannot be that degenerate and are checked only when decoded.
_SHORT_SEGMENTATION = 64


@dataclass(frozen=True)
class Segmentations:
    """The segmentations the index checks: one row each, columns of the same annotations.

    Attributes:
        raw_of: an annotation's raw segmentation text, by its row in the annotation table.
        rows: each one's row in the annotation table (what ``raw_of`` takes).
        kind: each one's ``SEG_*``, told by its first byte; refined in place by the checks.
        heights, widths: its image's size.
        ids: its annotation id (what a finding's example names).
        lengths: the length of its raw text.
    """

    raw_of: Callable[[int], bytes | bytearray]
    rows: np.ndarray
    kind: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    ids: np.ndarray
    lengths: np.ndarray


class SkippedAnnotation(TypedDict):
    """An annotation left out because of its segmentation, and why: an example in the index's
    findings, or one that a mask could not be drawn from (``coco.masks``)."""

    id: int
    error: str


class RleSizeMismatch(TypedDict):
    """An annotation skipped because its RLE's size is not its image's (a finding's example)."""

    id: int
    rle_size: list[int]
    image_size: list[int]


def check_segmentations(segs: Segmentations, problems: Problems) -> np.ndarray:
    """Return a keep-mask over ``segs``; refine ``segs.kind`` (uncompressed RLEs, empty polygon
    lists as boxes).

    Every RLE is checked in full (size, and counts that cover the image exactly); polygons are
    parsed only when short enough to possibly have fewer than 3 points: longer ones are checked
    by :func:`polygon_parts` when a mask is made, before pycocotools sees them.
    """
    raw_of, rows, kind, ids = segs.raw_of, segs.rows, segs.kind, segs.ids
    heights, widths = segs.heights, segs.widths
    keep = np.ones(len(rows), bool)
    for i in np.flatnonzero(kind == SEG_UNKNOWN):
        keep[i] = False
        problems.add(
            "bad_segmentation",
            "annotations whose segmentation is neither a polygon list nor an RLE (skipped)",
            int(ids[i]),
        )
    _check_rles(segs, keep, problems)
    for i in np.flatnonzero((kind == SEG_POLYGON) & (segs.lengths <= _SHORT_SEGMENTATION)):
        raw = raw_of(int(rows[i]))
        if bytes(raw).replace(b" ", b"") == b"[]":
            kind[i] = SEG_BOX
            continue
        try:
            polygon_parts(raw, int(heights[i]), int(widths[i]))
        except ValueError as e:
            keep[i] = False
            skipped: SkippedAnnotation = {"id": int(ids[i]), "error": str(e)}
            problems.add(
                "bad_polygon",
                "annotations whose polygon is unusable: fewer than 3 points, coordinates that "
                "are not finite numbers or lie far outside the image (skipped)",
                skipped,
            )
    return keep


def _check_rles(segs: Segmentations, keep: np.ndarray, problems: Problems) -> None:
    """Clear ``keep`` for malformed RLEs and RLEs of the wrong size; mark uncompressed ones."""
    raw_of, rows, kind, ids = segs.raw_of, segs.rows, segs.kind, segs.ids
    heights, widths = segs.heights, segs.widths
    for i in np.flatnonzero(kind == SEG_RLE):
        h, w = int(heights[i]), int(widths[i])
        try:
            head = checked_rle(raw_of(int(rows[i])), h, w)
        except RleSizeError as e:
            keep[i] = False
            mismatch: RleSizeMismatch = {
                "id": int(ids[i]),
                "rle_size": e.size,
                "image_size": [h, w],
            }
            problems.add(
                "rle_size_mismatch",
                "annotations whose RLE size differs from their image's height x width (skipped)",
                mismatch,
            )
        except ValueError as e:
            keep[i] = False
            skipped: SkippedAnnotation = {"id": int(ids[i]), "error": str(e)}
            problems.add(
                "bad_rle",
                "annotations whose RLE is malformed: counts that are not run lengths covering "
                "the image exactly once, or not pycocotools' encoding (skipped)",
                skipped,
            )
        else:
            if isinstance(head.counts, list):
                kind[i] = SEG_RLE_UNCOMPRESSED


class RleSizeError(ValueError):
    """An RLE whose size is not its image's."""

    def __init__(self, size: list[int], height: int, width: int) -> None:
        super().__init__(f"RLE size {size} differs from its image's [{height}, {width}]")
        self.size = size


_RLE = msgspec.json.Decoder(RleHead)
_POLYGONS = msgspec.json.Decoder(list[list[float]])


def checked_rle(raw: bytes | bytearray, height: int, width: int) -> RleHead:
    """The RLE in ``raw``, proven safe to hand to pycocotools: its size is the image's and its
    counts are run lengths summing exactly to height x width (pycocotools trusts them: a short
    sum leaves uninitialised memory in the mask, a long one writes past it).

    Raises:
        RleSizeError: the size differs from the image's.
        ValueError: anything else, saying what.
    """
    try:
        head = _RLE.decode(raw)
    except msgspec.DecodeError as e:  # ValidationError included: negative, huge, not numbers
        raise ValueError(f"malformed RLE ({e})") from None
    if tuple(head.size) != (height, width):
        raise RleSizeError(list(head.size), height, width)
    if isinstance(head.counts, list):
        counts = head.counts  # non-negative: the schema checked every one
    else:
        decoded = string_counts(head.counts)
        if decoded is None or min(decoded, default=0) < 0:
            raise ValueError("compressed RLE counts are not pycocotools' encoding")
        counts = decoded
    if sum(counts) != height * width:
        raise ValueError(f"RLE counts sum to {sum(counts)}, not height x width = {height * width}")
    return head


def string_counts(text: str) -> list[int] | None:
    """Run lengths of a compressed RLE string, decoded as pycocotools' ``rleFrString`` does
    (6-bit groups from "0", a sign bit, deltas from the count two before); None when ``text``
    has characters outside that alphabet or stops inside a number."""
    try:
        data = text.encode("ascii")
    except UnicodeEncodeError:
        return None
    if data and (min(data) < 48 or max(data) > 111):
        return None
    counts: list[int] = []
    x = k = 0
    for byte in data:
        c = byte - 48
        x |= (c & 0x1F) << (5 * k)
        k += 1
        if c & 0x20:  # more groups follow
            continue
        if c & 0x10:
            x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
        x = k = 0
    return None if k else counts


def polygon_parts(raw: bytes | bytearray, height: int, width: int) -> list[list[float]]:
    """The polygons of a segmentation, proven safe to rasterise: parts of 3+ points (pycocotools
    reads a part of 4 numbers as a box, so shorter parts are dropped), every coordinate a finite
    number within ``POLYGON_REACH`` sides (plus a margin) of the image.

    Raises:
        ValueError: no such polygon, or a coordinate that is not one, saying which.
    """
    try:
        parts = [p for p in _POLYGONS.decode(raw) if len(p) >= 6]
    except msgspec.ValidationError as e:
        raise ValueError(f"a polygon holds something other than numbers ({e})") from None
    except msgspec.DecodeError as e:
        raise ValueError(f"segmentation is not valid JSON ({e})") from None
    if not parts:
        raise ValueError("no polygon with 3 or more points")
    for p in parts:
        xy = np.asarray(p[: len(p) // 2 * 2], np.float64).reshape(-1, 2)
        if not np.isfinite(xy).all():
            raise ValueError("a polygon coordinate is not finite")
        reach = np.abs(xy).max(0)
        if reach[0] > POLYGON_REACH * width + POLYGON_MARGIN or (
            reach[1] > POLYGON_REACH * height + POLYGON_MARGIN
        ):
            raise ValueError(
                f"a polygon reaches {reach.max():.3g} px, far outside its {width}x{height} image"
            )
    return parts
