"""Typed records of a COCO instances file, decoded with msgspec.

Segmentations stay raw JSON text (``msgspec.Raw``): decoding every polygon up front is most of
pycocotools' load time and memory, and a mask is only needed for the few images a user looks at.
"""

from __future__ import annotations

import msgspec


class Image(msgspec.Struct, gc=False):
    id: int
    width: int
    height: int
    file_name: str = ""


class Category(msgspec.Struct, gc=False):
    id: int
    name: str
    supercategory: str = ""


class Annotation(msgspec.Struct, gc=False):
    id: int
    image_id: int
    category_id: int
    segmentation: msgspec.Raw = msgspec.Raw(b"null")
    area: float = 0.0
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    iscrowd: int = 0


class RleHead(msgspec.Struct, gc=False):
    """The parts of an RLE segmentation the index checks: its size and the type of its counts."""

    size: tuple[int, int]
    counts: msgspec.Raw


class TopLevel(msgspec.Struct):
    """The top-level object; records stay raw so one bad record can be skipped, not fatal."""

    images: list[msgspec.Raw] | None = None
    annotations: list[msgspec.Raw] = []
    categories: list[msgspec.Raw] | None = None
