"""The instances kind: objects with geometry (a category, a box, a segmentation, an area; in
keypoint files, their keypoints too).

Its declaration is the one place that says which columns an instances file gives, of which
dtype, what a missing field means and how each is decoded; its validation resolves each
annotation's image and category and checks its segmentation; its findings are
``health.table_findings``.

The schema is as lenient as pycocotools where labelling tools differ (string ids, no
``segmentation``, ``area`` or ``iscrowd``, ``bbox: []``, extra fields) and strict where a value
would break something later: every integer must fit int64.
"""

from __future__ import annotations

import itertools
from operator import attrgetter

import msgspec
import numpy as np

from explorer.coco import health
from explorer.coco._annotations import raw_text
from explorer.coco._records import Problems, column, id_column, lookup
from explorer.coco._schema import Id, Int64
from explorer.coco.annotation_kind import (
    IMAGE_ROW,
    AnnotationKind,
    Column,
    RecordField,
    SpanContext,
    Tables,
    Validated,
)
from explorer.coco.segmentations import (
    SEG_BOX,
    SEG_POLYGON,
    SEG_RLE,
    SEG_UNKNOWN,
    Segmentations,
    check_segmentations,
)
from explorer.types import Category

# A missing area is NaN while decoding, then the box's w*h (see _areas).
NO_AREA = float("nan")
# num_keypoints of a record that leaves it out (or writes null): not given. pycocotools raises
# KeyError on it when evaluating keypoints; the evaluation counts it as 0.
NUM_KEYPOINTS_NOT_GIVEN = -1
_INT32 = np.iinfo(np.int32)


def _ids(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray]:
    return (id_column(chunk, field.name),)


def _flags(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray]:
    return (column(chunk, field.name, np.int64) != 0,)  # int64 first: overflow means "loose"


def _areas(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray]:
    """Areas; no area given: the box's (w*h), as most tools compute it for boxes."""
    area = column(chunk, field.name, np.float64)
    no_area = np.isnan(area)
    if no_area.any():
        box = span.columns["bbox"]
        area[no_area] = box[no_area, 2] * box[no_area, 3]
    return (area,)


def _boxes(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray]:
    """The n x 4 box column. Keypoint files write ``"bbox": []``: such a box is derived from
    the polygon when there is one, else zeros; both are reported."""
    n = len(chunk)
    boxes = list(map(attrgetter(field.name), chunk))
    sizes = np.fromiter(map(len, boxes), np.int64, n)
    if (sizes == 4).all():
        return (np.fromiter(itertools.chain.from_iterable(boxes), np.float64, 4 * n).reshape(n, 4),)
    out = np.zeros((n, 4))
    for i in range(n):
        if sizes[i] == 4:
            out[i] = boxes[i]
            continue
        out[i] = _polygon_box(bytes(chunk[i].segmentation))
        derived = out[i].any()
        span.problems.add(
            "box_from_polygon" if derived else "no_box",
            "annotations without a box: box derived from their polygon"
            if derived
            else "annotations without a box or polygon (box left at zeros)",
            chunk[i].id,
            "info" if derived else "warning",
        )
    return (out,)


def _keypoint_counts(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray]:
    """``num_keypoints`` as int32 (a count beyond it is clipped: no file has 2**31 keypoints)."""
    if field.left_out_by_all(chunk):
        return (np.full(len(chunk), NUM_KEYPOINTS_NOT_GIVEN, np.int32),)
    try:
        counts = column(chunk, field.name, np.int64)  # past int64: OverflowError, go loose
    except TypeError:  # the loose schema's null
        values = map(attrgetter(field.name), chunk)
        not_given = (NUM_KEYPOINTS_NOT_GIVEN if v is None else v for v in values)
        counts = np.fromiter(not_given, np.int64, len(chunk))
    return (np.clip(counts, _INT32.min, _INT32.max).astype(np.int32),)


def _raw_address(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray, ...]:
    """Where a raw field's text lies, (offset, length): :func:`raw_text` less its first byte."""
    return raw_text(field, chunk, span)[:2]


def _polygon_box(raw: bytes) -> tuple[float, float, float, float]:
    """The x y w h box around a polygon segmentation; zeros when it is not one."""
    try:
        parts = msgspec.json.decode(raw, type=list[list[float]])
        xy = np.concatenate([np.asarray(p[: len(p) // 2 * 2]) for p in parts]).reshape(-1, 2)
    except (msgspec.DecodeError, ValueError):
        return (0.0, 0.0, 0.0, 0.0)
    if not len(xy) or not np.isfinite(xy).all():
        return (0.0, 0.0, 0.0, 0.0)
    lo, hi = xy.min(0), xy.max(0)
    return (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))


# The fast schema's ids are plain ints (ids overflowing int64 make the span go loose); the
# loose one's are also strings ("0", "img-3"), mapped to int64 by _records.id_column.
FIELDS = (
    RecordField("id", int, Id, (Column("id", "int64"),), _ids),
    RecordField("image_id", int, Id, (Column("image_id", "int64"),), _ids),
    RecordField("category_id", int, Id, (Column("category_id", "int64"),), _ids),
    # raw JSON text; missing: a box-only annotation
    RecordField(
        "segmentation",
        msgspec.Raw,
        msgspec.Raw,
        (
            Column("seg_offset", "int64"),
            Column("seg_length", "int64"),
            Column("seg_first", "uint8", stored=False),  # tells seg_kind, then dropped
        ),
        raw_text,
        missing=msgspec.Raw(b"null"),
    ),
    # x y w h; keypoint files write [] (see _boxes), which only the loose schema accepts
    RecordField(
        "bbox",
        tuple[float, float, float, float],
        list[float],
        (Column("bbox", "float64", (4,)),),
        _boxes,
        missing=(0.0, 0.0, 0.0, 0.0),
        loose_missing=[],
    ),
    RecordField("area", float, float, (Column("area", "float64"),), _areas, missing=NO_AREA),
    RecordField("iscrowd", int, Int64, (Column("iscrowd", "bool"),), _flags, missing=0),
    # keypoint files: how many keypoints are labelled (v > 0), as the file says
    RecordField(
        "num_keypoints",
        int,
        Int64 | None,
        (Column("num_keypoints", "int32"),),
        _keypoint_counts,
        missing=NUM_KEYPOINTS_NOT_GIVEN,
    ),
    # raw JSON text (x y v per keypoint), decoded on demand (``CocoIndex.keypoints``): as floats
    # it would be 107 MB for train2017's person file, and slow its opening; missing: length 0
    RecordField(
        "keypoints",
        msgspec.Raw,
        msgspec.Raw,
        (Column("kp_offset", "int64"), Column("kp_length", "int64")),
        _raw_address,
        missing=msgspec.Raw(b"null"),
    ),
)


def _validate(parsed: dict[str, np.ndarray], tables: Tables, problems: Problems) -> Validated:
    """Resolve each annotation's image and category rows and tell its segmentation kind; drop
    (and report) annotations of unknown images or categories and bad segmentations."""
    image_row, category_row = _resolve_rows(parsed, tables, problems)
    keep = (image_row >= 0) & (category_row >= 0)
    seg_kind = _segmentation_kinds(parsed, tables, image_row, keep, problems)
    derived = {
        "image_row": image_row.astype(np.int32),
        "category_row": category_row.astype(np.int32),
        "seg_kind": seg_kind,
    }
    return Validated(keep, derived)


def _resolve_rows(
    anns: dict[str, np.ndarray], tables: Tables, problems: Problems
) -> tuple[np.ndarray, np.ndarray]:
    """Each annotation's image row and category row (-1 where unknown, reported)."""
    image_row = lookup(tables.images["id"], anns["image_id"])
    cat_ids = np.array([c["id"] for c in tables.categories], dtype=np.int64)
    category_row = lookup(cat_ids, anns["category_id"])
    problems.add_rows(
        "annotation_unknown_image",
        "annotations whose image_id is not in 'images' (skipped)",
        np.flatnonzero(image_row < 0),
        lambda i: {"id": int(anns["id"][i]), "image_id": int(anns["image_id"][i])},
    )
    problems.add_rows(
        "annotation_unknown_category",
        "annotations whose category_id is not in 'categories' (skipped)",
        np.flatnonzero((image_row >= 0) & (category_row < 0)),
        lambda i: {"id": int(anns["id"][i]), "category_id": int(anns["category_id"][i])},
    )
    return image_row, category_row


def _segmentation_kinds(
    anns: dict[str, np.ndarray],
    tables: Tables,
    image_row: np.ndarray,
    keep: np.ndarray,
    problems: Problems,
) -> np.ndarray:
    """Each annotation's ``seg_kind``, told by its first byte and refined by the cheap checks
    of the kept ones; clears ``keep`` where a segmentation is bad."""
    heights, widths = tables.images["height"], tables.images["width"]
    kind = np.full(len(keep), SEG_UNKNOWN, np.uint8)
    kind[anns["seg_first"] == ord("[")] = SEG_POLYGON
    kind[anns["seg_first"] == ord("{")] = SEG_RLE
    kind[anns["seg_first"] == ord("n")] = SEG_BOX  # null, or no segmentation at all
    kind[(anns["seg_length"] == 2) & (kind == SEG_POLYGON)] = SEG_BOX  # "[]"
    if len(widths):  # an image of unknown size: a mask has no size to be drawn at
        kind[keep & (widths[np.maximum(image_row, 0)] == 0)] = SEG_BOX
    rows = np.flatnonzero(keep)
    sub_kind = kind[rows]
    offset, length, text = anns["seg_offset"], anns["seg_length"], tables.text
    segs = Segmentations(
        raw_of=lambda i: text[offset[i] : offset[i] + length[i]],
        rows=rows,
        kind=sub_kind,
        heights=heights[image_row[rows]],
        widths=widths[image_row[rows]],
        ids=anns["id"][rows],
        lengths=length[rows],
    )
    ok = check_segmentations(segs, problems)
    kind[rows] = sub_kind
    keep[rows] = ok
    return kind


def _findings(images: dict, table: dict, categories: list[Category]) -> list[health.Finding]:
    return health.table_findings(images, table, categories, table["seg_kind"] == SEG_BOX)


INSTANCES = AnnotationKind(
    name="instances",
    fields=FIELDS,
    derived=(
        IMAGE_ROW,
        Column("category_row", "int32"),
        # 0 polygon, 1 RLE, 2 uncompressed RLE, 3 box only (see segmentations.SEG_*)
        Column("seg_kind", "uint8"),
    ),
    validate=_validate,
    findings=_findings,
    image_start="ann_start",
)
