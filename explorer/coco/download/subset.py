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
    """The chosen images and the JSON document describing them.

    Attributes:
        images: one entry per file to fetch, in the file's order.
        document: the instances JSON of exactly the chosen image records.
        shared_names: chosen records whose file an earlier record names already (the same
            file from the same URL: fetched once).
    """

    images: tuple[ImageEntry, ...]
    document: bytes
    shared_names: int = 0


NAME_MAX = 255  # the longest name a folder entry holds, in bytes, on Linux's file systems


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
        DatasetError: ``data`` is not a COCO instances file (or is nested too deeply to be
            one), a file name is longer than a folder entry holds, or two records name one
            file but different URLs.
        UnsafePathError: a file name that is not a plain name in the split's folder.
    """
    try:
        return _select(data, split, categories, max_images, seed)
    except RecursionError:  # msgspec's answer to deep nesting
        raise DatasetError(f"instances_{split}.json: JSON nested too deeply to be COCO") from None


def _select(
    data: bytes,
    split: str,
    categories: Sequence[str] | None,
    max_images: int | None,
    seed: int,
) -> Selection:
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
    entries = _one_per_file([images[i] for i in keep], split)
    shared = len(keep) - len(entries)
    if len(keep) == len(images):
        return Selection(entries, data, shared)
    ids = {images[i].id for i in keep}
    return Selection(entries, _document(doc, [raw_images[i] for i in keep], ids), shared)


def _one_per_file(images: list[_Image], split: str) -> tuple[ImageEntry, ...]:
    """One entry per file name: records naming one file from one URL are one file (fetched
    once, by one worker); from two URLs, which picture each record describes is a guess."""
    first: dict[str, tuple[_Image, ImageEntry]] = {}
    for image in images:
        entry = _entry(image, split)
        seen = first.setdefault(entry.file_name, (image, entry))
        if seen[1].url_path != entry.url_path:
            raise DatasetError(
                f"instances_{split}.json: images {seen[0].id} and {image.id} both name "
                f"{entry.file_name} but come from different URLs: one folder cannot hold both"
            )
    return tuple(entry for _, entry in first.values())


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
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > NAME_MAX:
        raise DatasetError(
            f"instances_{split}.json: image {image.id}: a file name of {size} bytes "
            f"({name[:24]}...): longer than the {NAME_MAX} a folder entry holds"
        )
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
