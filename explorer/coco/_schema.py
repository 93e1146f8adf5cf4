"""Typed records of a COCO instances file, decoded with msgspec.

Segmentations stay raw JSON text (``msgspec.Raw``): decoding every polygon up front is most of
pycocotools' load time and memory, and a mask is only needed for the few images a user looks at.

The schema is as lenient as pycocotools where labelling tools differ (string ids, no
``segmentation``, ``area`` or ``iscrowd``, ``supercategory: null``, ``bbox: []``, images without a
size, extra fields) and strict where a value would break something later: every integer must
fit int64, so a record with ``"id": 2**64`` is skipped instead of overflowing a column.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# Ids as labelling tools write them: numbers, or strings ("0", "img-3") mapped to int64 by
# _build.id_column.
Id = Int64 | str
# Missing area: NaN here, then the box's w*h (vectorised in _annotations.parse_spans).
NO_AREA = float("nan")


class Image(msgspec.Struct, gc=False):
    id: Id
    width: Int64 = 0  # 0: size unknown (missing), kept; its annotations are boxes only
    height: Int64 = 0
    file_name: str = ""


class Category(msgspec.Struct, gc=False):
    id: Id
    name: str
    supercategory: str | None = ""


class Annotation(msgspec.Struct, gc=False):
    """An annotation as most files write it: the fast schema (about 30% quicker to decode
    than :class:`LooseAnnotation`). A span of records that does not fit it is decoded again
    record by record as :class:`LooseAnnotation`; so is one whose ids overflow int64 (plain
    ``int`` accepts them, the int64 column does not)."""

    id: int
    image_id: int
    category_id: int
    segmentation: msgspec.Raw = msgspec.Raw(b"null")  # missing: a box-only annotation
    area: float = NO_AREA
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    iscrowd: int = 0


class LooseAnnotation(msgspec.Struct, gc=False):
    """An annotation as any tool writes it: string ids, ``bbox: []``; every integer int64."""

    id: Id
    image_id: Id
    category_id: Id
    segmentation: msgspec.Raw = msgspec.Raw(b"null")
    area: float = NO_AREA
    bbox: list[float] = []  # usually 4 numbers; keypoint files write [] (see _annotations)
    iscrowd: Int64 = 0


NonNegative = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class RleHead(msgspec.Struct, gc=False):
    """An RLE segmentation as the index checks it: its size and counts (uncompressed: a list of
    run lengths; compressed: pycocotools' string)."""

    size: tuple[Int64, Int64]
    counts: list[NonNegative] | str


class TopLevel(msgspec.Struct):
    """The top-level object; records stay raw so one bad record can be skipped, not fatal."""

    images: list[msgspec.Raw] | None = None
    annotations: list[msgspec.Raw] = []
    categories: list[msgspec.Raw] | None = None
