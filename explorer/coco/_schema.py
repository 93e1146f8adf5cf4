"""Typed records of a COCO file's top level, images, categories and RLEs, decoded with msgspec.

Annotation records are declared by their kind (``explorer.coco.instances``), built from its
fields. The schema is as lenient as pycocotools where labelling tools differ (string ids,
``supercategory: null``, images without a size, extra fields) and strict where a value would
break something later: every integer must fit int64, so a record with ``"id": 2**64`` is skipped
instead of overflowing a column.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
# Ids as labelling tools write them: numbers, or strings ("0", "img-3") mapped to int64 by
# _records.id_column.
Id = Int64 | str


class ImageRecord(msgspec.Struct, gc=False):
    id: Id
    width: Int64 = 0  # 0: size unknown (missing), kept; its annotations are boxes only
    height: Int64 = 0
    file_name: str = ""


class CategoryRecord(msgspec.Struct, gc=False):
    """A category as the file writes it (the index keeps it as ``explorer.types.Category``)."""

    id: Id
    name: str
    supercategory: str | None = ""
    # a keypoint category's names and skeleton, checked apart (``_build.parse_categories``):
    # a bad one is dropped, not the category with all its annotations
    keypoints: msgspec.Raw = msgspec.Raw(b"null")
    skeleton: msgspec.Raw = msgspec.Raw(b"null")


NonNegative = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class RleHead(msgspec.Struct, gc=False):
    """An RLE segmentation as the index checks it: its size and counts (uncompressed: a list of
    run lengths; compressed: pycocotools' string)."""

    size: tuple[Int64, Int64]
    counts: list[NonNegative] | str


KeypointNames = list[str]
Skeleton = list[tuple[Int64, Int64]]  # pairs of 1-based keypoint numbers


class TopLevel(msgspec.Struct):
    """The top-level object; records stay raw so one bad record can be skipped, not fatal."""

    images: list[msgspec.Raw] | None = None
    annotations: list[msgspec.Raw] = []
    categories: list[msgspec.Raw] | None = None
