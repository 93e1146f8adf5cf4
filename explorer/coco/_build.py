"""Parse a COCO instances JSON: top level, images, categories, checks (the index's cold path).

Annotations, the bulk of a file, are decoded by ``_annotations``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from explorer.coco._schema import Category, Image, RleHead, TopLevel
from explorer.coco.health import MAX_EXAMPLES, Finding, Severity
from explorer.errors import DatasetError
from explorer.paths import NotARegularFile, open_regular
from explorer.types import MAX_IMAGE_PIXELS

# SEG_BOX: no segmentation (missing, null or []), or an image of unknown size: the annotation
# is counted everywhere but has no instance mask.
SEG_POLYGON, SEG_RLE, SEG_RLE_UNCOMPRESSED, SEG_BOX = 0, 1, 2, 3
# A segmentation that is neither a list nor an object: a kind no decoder knows, so the record is
# skipped. Unrelated to the ignore label (explorer.types.IGNORE_LABEL), which is also 255.
SEG_UNKNOWN = 255
MAX_SIDE = 65535  # widths and heights beyond it are skipped (and MAX_IMAGE_PIXELS caps the area)
# A polygon point may lie this far outside its image (a multiple of the side, plus a margin):
# pycocotools rasterises the whole extent, so 1e7 costs it 1.2 GB and 1e10 crashes it.
POLYGON_REACH, POLYGON_MARGIN = 4, 16
# Polygons this short are parsed at index time to catch ones with fewer than 3 points; longer
# ones cannot be that degenerate and are checked only when decoded.
_SHORT_SEGMENTATION = 64


class Problems:
    """Bad records found while parsing: grouped by check, with a few examples each."""

    def __init__(self) -> None:
        self.items: dict[str, Finding] = {}

    def add(self, check: str, message: str, example: object, severity: Severity = "error") -> None:
        item = self.items.setdefault(
            check,
            {"check": check, "severity": severity, "count": 0, "message": message, "examples": []},
        )
        item["count"] += 1
        if len(item["examples"]) < MAX_EXAMPLES:
            item["examples"].append(example)

    def merge(self, items: dict[str, Finding]) -> None:
        """Add another process's ``items`` (the forked parser's findings)."""
        for check, item in items.items():
            mine = self.items.setdefault(check, {**item, "count": 0, "examples": []})
            mine["count"] += item["count"]
            mine["examples"] = (mine["examples"] + item["examples"])[:MAX_EXAMPLES]

    def add_rows(
        self,
        check: str,
        message: str,
        rows: np.ndarray,
        example: Callable[[int], object],
        severity: Severity = "error",
    ) -> None:
        """Record every row of ``rows``; examples (``example(row)``) for the first few."""
        for i in rows[:MAX_EXAMPLES]:
            self.add(check, message, example(int(i)), severity)
        if len(rows) > MAX_EXAMPLES:
            self.items[check]["count"] += len(rows) - MAX_EXAMPLES


FileBytes = mmap.mmap | bytearray  # writable: see read_file


def read_file(path: Path) -> FileBytes:
    """The file's bytes in writable memory: the annotation parser brackets spans of it in place
    (see ``_annotations.parse_spans``) instead of copying them. Raises DatasetError.

    The file is read, not memory-mapped: a writer truncating it meanwhile must give a clean
    error, not SIGBUS. It is read into private anonymous memory, which (unlike a bytearray)
    is not zero-filled first, and which a forked child's writes never reach.
    """
    try:
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            data = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE) if size else bytearray()
            got, rest = f.readinto(data), f.read()
            if got != size or rest:  # the file changed size while read
                data = bytearray(data[:got] + rest)
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not an annotation file") from None
    except NotARegularFile:
        raise DatasetError(f"{path}: not a regular file (a pipe, device or socket)") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise DatasetError(f"{path}: empty file")
    if data[: len(_BOM)] == _BOM:  # as some Windows tools write: blanks keep offsets in place
        data[: len(_BOM)] = b"   "
    return data


_BOM = b"\xef\xbb\xbf"


def decode_top_level(path: Path, data: bytes | FileBytes) -> TopLevel:
    """Decode the top level, records left raw. Raises DatasetError."""
    try:
        top = msgspec.json.decode(data, type=TopLevel)
    except msgspec.ValidationError as e:  # a subclass of DecodeError: catch it first
        head = bytes(data[:4096]).lstrip()  # blanks, then "[" and "{": a list of records
        if head[:1] == b"[" and head[1:].lstrip()[:1] == b"{":
            raise DatasetError(
                f"{path}: a COCO results file (a list of detections), not an instances file: "
                "open the instances file it was computed on"
            ) from None
        raise DatasetError(f"{path}: not a COCO instances file ({e})") from None
    except msgspec.DecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if top.images is None:
        raise DatasetError(f"{path}: not a COCO instances file (no 'images' list)")
    if top.categories is None:
        raise DatasetError(f"{path}: not a COCO instances file (no 'categories' list)")
    return top


def _record_id(raw: msgspec.Raw) -> object:
    try:
        obj = msgspec.json.decode(raw)
        return obj.get("id", "?") if isinstance(obj, dict) else "?"
    except msgspec.DecodeError:
        return "?"


def typed_records(raws: list, typ: type, what: str, problems: Problems) -> list:
    """Decode raw records; if one does not fit ``typ``, redo them one by one, skipping bad ones."""
    try:
        return msgspec.json.decode(b"[" + b",".join(raws) + b"]", type=list[typ])
    except msgspec.ValidationError:
        pass
    one = msgspec.json.Decoder(typ)
    good = []
    for raw in raws:
        try:
            good.append(one.decode(raw))
        except msgspec.ValidationError as e:
            problems.add(
                f"bad_{what}_record",
                f"{what} records that do not fit the COCO schema (skipped)",
                {"id": _record_id(raw), "error": str(e)},
            )
    return good


def _column(items: list, field: str, dtype) -> np.ndarray:
    return np.fromiter(map(attrgetter(field), items), dtype, len(items))


def string_id(value: str) -> int:
    """The int64 a string id stands for: a decimal string its value ("0" -> 0), any other
    string a stable hash below -2**62, the same in every process (and never a COCO id)."""
    try:
        number = int(value)
        if -(2**62) <= number < 2**63:
            return number
    except ValueError:
        pass
    digest = hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=8).digest()
    return -(2**62) - (int.from_bytes(digest, "little") >> 2)


def id_column(items: list, field: str) -> np.ndarray:
    """An id column as int64; string ids are mapped by :func:`string_id` (the slow way, taken
    only when the fast one meets a string numpy cannot read as an integer)."""
    try:
        return _column(items, field, np.int64)
    except (ValueError, TypeError, OverflowError):
        values = map(attrgetter(field), items)
        ids = (v if isinstance(v, int) else string_id(v) for v in values)
        return np.fromiter(ids, np.int64, len(items))


SizeOf = Callable[[str], "tuple[int, int] | None"]


def parse_images(
    raws: list, problems: Problems, size_of: SizeOf | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Image columns, and the image ids written as strings that are not numbers (see
    :func:`_hashed_ids`); images of a bad size or a repeated id are skipped and reported. A width
    or height of 0 (or none given) is read with ``size_of(file_name)`` when given; else, or when
    that gives None, it means "unknown": the image is kept, its annotations boxes."""
    items = typed_records(raws, Image, "image", problems)
    ids = id_column(items, "id")
    width = _column(items, "width", np.int64)
    height = _column(items, "height", np.int64)
    unknown = (width == 0) | (height == 0)
    if size_of is not None and unknown.any():
        _sizes_from_files(items, ids, np.flatnonzero(unknown), width, height, size_of, problems)
        unknown = (width == 0) | (height == 0)
    keep = unknown | (
        (width >= 1)
        & (width <= MAX_SIDE)
        & (height >= 1)
        & (height <= MAX_SIDE)
        & (np.clip(width, 0, MAX_SIDE) * np.clip(height, 0, MAX_SIDE) <= MAX_IMAGE_PIXELS)
    )
    problems.add_rows(
        "bad_image_size",
        f"images whose width or height is negative, above {MAX_SIDE}, or whose area is above "
        f"{MAX_IMAGE_PIXELS:,} pixels (skipped)",
        np.flatnonzero(~keep),
        lambda i: {"id": int(ids[i]), "width": int(width[i]), "height": int(height[i])},
    )
    problems.add_rows(
        "unknown_image_size",
        "images without a width or height (kept, size unknown; their annotations count as "
        "boxes only)",
        np.flatnonzero(keep & unknown),
        lambda i: int(ids[i]),
        "info",
    )
    keep &= _first_of_each(ids, problems)
    width, height = np.where(unknown, 0, width), np.where(unknown, 0, height)
    names = [it.file_name for it, k in zip(items, keep, strict=True) if k]
    columns = {
        "id": ids[keep],
        "width": width[keep].astype(np.int32),
        "height": height[keep].astype(np.int32),
        "file_name": np.array(names, dtype=str) if names else np.array([], dtype="<U1"),
    }
    return columns, _hashed_ids(items, ids, keep)


def _hashed_ids(items: list, ids: np.ndarray, keep: np.ndarray) -> dict[str, str]:
    """The string ids that are not numbers, as written, by the number they were given (JSON
    keys are strings): what the app shows next to the number."""
    return {
        str(int(i)): it.id
        for it, i, k in zip(items, ids, keep, strict=True)
        if k and isinstance(it.id, str) and str(int(i)) != it.id.strip()
    }


def _sizes_from_files(
    items: list,
    ids: np.ndarray,
    rows: np.ndarray,
    width: np.ndarray,
    height: np.ndarray,
    size_of: SizeOf,
    problems: Problems,
) -> None:
    """Fill in place the sizes of ``rows`` that ``size_of`` can read and that are sane; the rest
    stay unknown. Every image keeps its row either way."""
    found = []
    for i in rows:
        size = size_of(items[i].file_name)
        if (
            size
            and 1 <= min(size)
            and max(size) <= MAX_SIDE
            and size[0] * size[1] <= MAX_IMAGE_PIXELS
        ):
            width[i], height[i] = size
            found.append(i)
    problems.add_rows(
        "image_size_from_file",
        "images without a width or height in the annotation file; read from their image files",
        np.array(found, dtype=np.int64),
        lambda i: {"id": int(ids[i]), "width": int(width[i]), "height": int(height[i])},
        "info",
    )


def _first_of_each(ids: np.ndarray, problems: Problems) -> np.ndarray:
    _, first = np.unique(ids, return_index=True)
    unique = np.zeros(len(ids), bool)
    unique[first] = True
    problems.add_rows(
        "duplicate_image_id",
        "images whose id repeats an earlier one (skipped)",
        np.flatnonzero(~unique),
        lambda i: int(ids[i]),
    )
    return unique


def parse_categories(raws: list, problems: Problems) -> list[dict]:
    """Categories in file order (a missing or null supercategory is ""; id 0 is a category like
    any other); repeated ids are skipped and reported."""
    cats, seen = [], set()
    for c in typed_records(raws, Category, "category", problems):
        cid = c.id if isinstance(c.id, int) else string_id(c.id)
        if cid in seen:
            problems.add(
                "duplicate_category_id",
                "categories whose id repeats an earlier one (skipped)",
                cid,
            )
            continue
        seen.add(cid)
        cats.append({"id": cid, "name": c.name, "supercategory": c.supercategory or ""})
    return cats


def check_segmentations(
    raw_of: Callable[[int], bytes],
    rows: np.ndarray,
    kind: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    ids: np.ndarray,
    lengths: np.ndarray,
    problems: Problems,
) -> np.ndarray:
    """Return a keep-mask over ``rows``; refine ``kind`` (uncompressed RLEs, empty polygon lists
    as boxes).

    Every RLE is checked in full (size, and counts that cover the image exactly); polygons are
    parsed only when short enough to possibly have fewer than 3 points: longer ones are checked
    by :func:`polygon_parts` when a mask is made, before pycocotools sees them.
    """
    keep = np.ones(len(rows), bool)
    for i in np.flatnonzero(kind == SEG_UNKNOWN):
        keep[i] = False
        problems.add(
            "bad_segmentation",
            "annotations whose segmentation is neither a polygon list nor an RLE (skipped)",
            int(ids[i]),
        )
    _check_rles(raw_of, rows, kind, heights, widths, ids, keep, problems)
    for i in np.flatnonzero((kind == SEG_POLYGON) & (lengths <= _SHORT_SEGMENTATION)):
        raw = raw_of(int(rows[i]))
        if bytes(raw).replace(b" ", b"") == b"[]":
            kind[i] = SEG_BOX
            continue
        try:
            polygon_parts(raw, int(heights[i]), int(widths[i]))
        except ValueError as e:
            keep[i] = False
            problems.add(
                "bad_polygon",
                "annotations whose polygon is unusable: fewer than 3 points, coordinates that "
                "are not finite numbers or lie far outside the image (skipped)",
                {"id": int(ids[i]), "error": str(e)},
            )
    return keep


def _check_rles(
    raw_of: Callable[[int], bytes],
    rows: np.ndarray,
    kind: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    ids: np.ndarray,
    keep: np.ndarray,
    problems: Problems,
) -> None:
    """Clear ``keep`` for malformed RLEs and RLEs of the wrong size; mark uncompressed ones."""
    for i in np.flatnonzero(kind == SEG_RLE):
        h, w = int(heights[i]), int(widths[i])
        try:
            head = checked_rle(raw_of(int(rows[i])), h, w)
        except RleSizeError as e:
            keep[i] = False
            problems.add(
                "rle_size_mismatch",
                "annotations whose RLE size differs from their image's height x width (skipped)",
                {"id": int(ids[i]), "rle_size": e.size, "image_size": [h, w]},
            )
        except ValueError as e:
            keep[i] = False
            problems.add(
                "bad_rle",
                "annotations whose RLE is malformed: counts that are not run lengths covering "
                "the image exactly once, or not pycocotools' encoding (skipped)",
                {"id": int(ids[i]), "error": str(e)},
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


def checked_rle(raw: bytes, height: int, width: int) -> RleHead:
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
        counts = string_counts(head.counts)
        if counts is None or min(counts, default=0) < 0:
            raise ValueError("compressed RLE counts are not pycocotools' encoding")
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


def polygon_parts(raw: bytes, height: int, width: int) -> list[list[float]]:
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
