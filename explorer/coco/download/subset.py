"""Which images of a split to download, and the instances JSON that describes exactly them.

Records are cut out of the JSON as raw text (``msgspec.Raw``), never rebuilt: a subset's images,
annotations and categories are byte for byte those of the original, and the whole split's file
is the original file itself.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec

from explorer.errors import DatasetError, ExplorerError, UnsafePathError


class _Image(msgspec.Struct):
    id: int | str
    file_name: str
    coco_url: str = ""


class _AnnotationRef(msgspec.Struct):
    image_id: int | str
    category_id: int | str


class _Category(msgspec.Struct):
    id: int | str
    name: str


@dataclass(frozen=True)
class ImageEntry:
    """One image to fetch: its file name in the split's folder and its path on the host."""

    file_name: str
    url_path: str


@dataclass(frozen=True)
class Selection:
    """The chosen images (in the file's order) and the JSON document describing them."""

    images: tuple[ImageEntry, ...]
    document: bytes


def select(
    data: bytes,
    split: str,
    categories: Sequence[str] | None = None,
    max_images: int | None = None,
    seed: int = 0,
) -> Selection:
    """The images of ``data`` (an instances JSON) to download, and their JSON.

    Args:
        data: the split's whole instances file.
        split: names the host folder when an image has no ``coco_url``.
        categories: keep images with at least one annotation of one of these category names
            (with all their annotations, so that masks stay true); None keeps every image.
        max_images: at most this many, chosen at random with ``seed`` (the same every run).
        seed: the choice's seed.

    Raises:
        ExplorerError: a category name the file does not have (the valid ones are listed), or
            no image matches.
        DatasetError: ``data`` is not a COCO instances file.
        UnsafePathError: a file name that is not a plain name in the split's folder.
    """
    doc = _decode(data, dict[str, msgspec.Raw])
    if "images" not in doc or "categories" not in doc:
        raise DatasetError(f"instances_{split}.json: no 'images' or 'categories': not COCO")
    raw_images = _decode(doc["images"], list[msgspec.Raw])
    images = _decode(doc["images"], list[_Image])
    keep = list(range(len(images)))
    if categories:
        keep = _with_categories(doc, images, categories)
    if max_images is not None and len(keep) > max_images:
        keep = sorted(random.Random(seed).sample(keep, max_images))
    entries = tuple(_entry(images[i], split) for i in keep)
    if len(keep) == len(images):
        return Selection(entries, data)
    ids = {images[i].id for i in keep}
    return Selection(entries, _document(doc, [raw_images[i] for i in keep], ids))


def _decode(data, type_):
    try:
        return msgspec.json.decode(data, type=type_)
    except msgspec.DecodeError as e:
        raise DatasetError(f"not a COCO instances file ({e})") from None


def _with_categories(doc: dict, images: list[_Image], names: Sequence[str]) -> list[int]:
    """Positions of the images with an annotation of one of the categories ``names``."""
    categories = _decode(doc["categories"], list[_Category])
    by_name = {c.name: c.id for c in categories}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        valid = ", ".join(c.name for c in categories)
        raise ExplorerError(f"--categories: unknown {', '.join(unknown)}; valid: {valid}")
    wanted = {by_name[n] for n in names}
    refs = _decode(doc.get("annotations", b"[]"), list[_AnnotationRef])
    with_them = {a.image_id for a in refs if a.category_id in wanted}
    keep = [i for i, im in enumerate(images) if im.id in with_them]
    if not keep:
        raise ExplorerError(f"--categories: no image has an annotation of {', '.join(names)}")
    return keep


def _entry(image: _Image, split: str) -> ImageEntry:
    name = image.file_name
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise UnsafePathError(f"{name!r}: not a plain file name in the {split} folder")
    path = urlsplit(image.coco_url).path if image.coco_url else ""
    return ImageEntry(name, path or f"/{split}/{name}")


def _document(doc: dict, raw_images: list[msgspec.Raw], ids: set) -> bytes:
    """The file again with only the kept images and their annotations, every other key (info,
    licenses, the whole category list) as it was."""
    raw_annotations = _decode(doc.get("annotations", b"[]"), list[msgspec.Raw])
    refs = _decode(doc.get("annotations", b"[]"), list[_AnnotationRef])
    kept = {
        "images": _array(raw_images),
        "annotations": _array(
            [r for r, a in zip(raw_annotations, refs, strict=True) if a.image_id in ids]
        ),
    }
    parts = [json.dumps(k).encode() + b":" + kept.get(k, bytes(v)) for k, v in doc.items()]
    return b"{" + b",".join(parts) + b"}"


def _array(items: list[msgspec.Raw]) -> bytes:
    return b"[" + b",".join(bytes(r) for r in items) + b"]"
