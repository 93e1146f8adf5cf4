"""Parse a COCO instances JSON: top level, images, categories, checks (the index's cold path).

Annotations, the bulk of a file, are decoded by ``_annotations``.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from pathlib import Path

import msgspec
import numpy as np

from explorer.coco._schema import Category, Image, RleHead, TopLevel
from explorer.coco.health import MAX_EXAMPLES, Finding, Severity
from explorer.errors import DatasetError

SEG_POLYGON, SEG_RLE, SEG_RLE_UNCOMPRESSED = 0, 1, 2
# A segmentation that is neither a list nor an object: a kind no decoder knows, so the record is
# skipped. Unrelated to the ignore label (explorer.types.IGNORE_LABEL), which is also 255.
SEG_UNKNOWN = 255
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
        self, check: str, message: str, rows: np.ndarray, example: Callable[[int], object]
    ) -> None:
        """Record every row of ``rows`` as bad; examples (``example(row)``) for the first few."""
        for i in rows[:MAX_EXAMPLES]:
            self.add(check, message, example(int(i)))
        if len(rows) > MAX_EXAMPLES:
            self.items[check]["count"] += len(rows) - MAX_EXAMPLES


def read_file(path: Path) -> bytes:
    """The file's bytes. Raises DatasetError.

    The file is read, not memory-mapped: a writer truncating it meanwhile must give a clean
    error, not SIGBUS.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not an annotation file") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise DatasetError(f"{path}: empty file")
    return data


def decode_top_level(path: Path, data: bytes) -> TopLevel:
    """Decode the top level, records left raw. Raises DatasetError."""
    try:
        top = msgspec.json.decode(data, type=TopLevel)
    except msgspec.ValidationError as e:  # a subclass of DecodeError: catch it first
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


def parse_images(raws: list, problems: Problems) -> dict[str, np.ndarray]:
    items = typed_records(raws, Image, "image", problems)
    ids = _column(items, "id", np.int64)
    width = _column(items, "width", np.int64)
    height = _column(items, "height", np.int64)
    keep = (width > 0) & (height > 0)
    problems.add_rows(
        "bad_image_size",
        "images whose width or height is not positive (skipped)",
        np.flatnonzero(~keep),
        lambda i: int(ids[i]),
    )
    _, first = np.unique(ids, return_index=True)
    unique = np.zeros(len(ids), bool)
    unique[first] = True
    problems.add_rows(
        "duplicate_image_id",
        "images whose id repeats an earlier one (skipped)",
        np.flatnonzero(~unique),
        lambda i: int(ids[i]),
    )
    keep &= unique
    names = [it.file_name for it, k in zip(items, keep, strict=True) if k]
    return {
        "id": ids[keep],
        "width": width[keep].astype(np.int32),
        "height": height[keep].astype(np.int32),
        "file_name": np.array(names, dtype=str) if names else np.array([], dtype="<U1"),
    }


def parse_categories(raws: list, problems: Problems) -> list[dict]:
    cats, seen = [], set()
    for c in typed_records(raws, Category, "category", problems):
        if c.id in seen:
            problems.add(
                "duplicate_category_id",
                "categories whose id repeats an earlier one (skipped)",
                c.id,
            )
            continue
        seen.add(c.id)
        cats.append({"id": c.id, "name": c.name, "supercategory": c.supercategory})
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
    """Return a keep-mask over ``rows``; set ``kind`` for RLEs. Cheap checks only.

    Every RLE is checked (its size must equal its image's); polygons are parsed only when
    short enough to possibly have fewer than 3 points.
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
        try:
            parts = msgspec.json.decode(raw_of(int(rows[i])))
        except msgspec.DecodeError:
            parts = None
        if not polygon_parts_valid(parts):
            keep[i] = False
            problems.add(
                "bad_polygon",
                "annotations whose polygon has fewer than 3 points (skipped)",
                int(ids[i]),
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
    rle = msgspec.json.Decoder(RleHead)
    for i in np.flatnonzero(kind == SEG_RLE):
        try:
            head = rle.decode(raw_of(int(rows[i])))
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            keep[i] = False
            problems.add(
                "bad_rle",
                "annotations whose RLE is malformed (skipped)",
                {"id": int(ids[i]), "error": str(e)},
            )
            continue
        if tuple(head.size) != (int(heights[i]), int(widths[i])):
            keep[i] = False
            problems.add(
                "rle_size_mismatch",
                "annotations whose RLE size differs from their image's height x width (skipped)",
                {
                    "id": int(ids[i]),
                    "rle_size": list(head.size),
                    "image_size": [int(heights[i]), int(widths[i])],
                },
            )
        elif bytes(head.counts)[:1] == b"[":
            kind[i] = SEG_RLE_UNCOMPRESSED


def polygon_parts_valid(parts: object) -> bool:
    """True when ``parts`` is a list with at least one polygon of 3+ points (6+ numbers)."""
    return isinstance(parts, list) and any(
        isinstance(p, list) and len(p) >= 6 and all(isinstance(v, (int, float)) for v in p)
        for p in parts
    )
