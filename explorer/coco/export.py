"""Export semantic masks as single-channel 8-bit PNGs (the layout segmentation trainers read).

Masks mirror the images' file names under the output folder: ``images/a/x.jpg`` becomes
``<out>/images/a/x.png`` (Windows separators are read as folders), so images of the same stem in
different folders keep apart. A name that cannot be a file (empty, ``.``, ``..``, a NUL byte, a
component over 200 bytes) becomes ``<image id>.png``; a mask name already taken in this export
(``x.jpg`` and ``x.png``, or names differing only in case) gets ``-<image id>`` after its stem.
``labels.json`` beside the masks maps pixel values to categories.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypedDict

import numpy as np

from explorer.coco import masks
from explorer.coco._build import FileChanged
from explorer.coco.health import Finding
from explorer.coco.images import MAX_IMAGE_PIXELS, resolve_image_path
from explorer.coco.index import CocoIndex
from explorer.coco.labels import VOC_COCO_IDS, VOC_COCO_NAMES
from explorer.coco.segmentations import SkippedAnnotation
from explorer.errors import DatasetError, ExplorerError
from explorer.paths import atomic_file, atomic_write_json
from explorer.types import IGNORE_LABEL, MaskLabels

LABELS_FILE = "labels.json"
MAX_NAME_BYTES = 200  # per path component: room for "-<image id>.png" under the 255-byte limit
_FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


class PixelLabel(TypedDict):
    """The category a mask's pixel value stands for (a ``labels.json`` entry)."""

    id: int
    name: str


class SkippedImage(TypedDict):
    """An image that got no mask, and why."""

    id: int
    error: str


class RenamedMask(TypedDict):
    """An image whose mask is not named after its file name, and the mask's name."""

    id: int
    file_name: str
    mask: str


class LabelsFile(TypedDict):
    """``labels.json``: the label set, the pixel values of background and overlap, whether the
    category ids were renumbered, and each pixel value's category (keys are the values)."""

    labels: MaskLabels
    background: int
    overlap: int
    renumbered: bool
    pixels: dict[str, PixelLabel]


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_semantic_masks` did.

    ``written`` is the number of PNG files written. ``skipped_opening`` are the index's health
    findings of severity error (records left out when the file was opened); ``skipped_drawing``
    lists ``{"id", "error"}`` of annotations whose segmentation could not be decoded;
    ``skipped_images`` ``{"id", "error"}`` of images that got no mask; ``renamed``
    ``{"id", "file_name", "mask"}`` of images whose mask is not named after their file name.
    ``label_map`` maps pixel values to ``{"id", "name"}``; ``remapped`` says category ids were
    renumbered 1..N because 0 (background) or ids above 254 are in use.
    """

    written: int
    out_dir: Path
    label_map: dict[int, PixelLabel]
    remapped: bool = False
    skipped_opening: list[Finding] = field(default_factory=list)
    skipped_drawing: list[SkippedAnnotation] = field(default_factory=list)
    skipped_images: list[SkippedImage] = field(default_factory=list)
    renamed: list[RenamedMask] = field(default_factory=list)


def select_image_rows(index: CocoIndex, image_ids: list[int] | None) -> np.ndarray:
    """Rows of ``image_ids`` (all images when None). Raises DatasetError naming unknown ids."""
    if image_ids is None:
        return np.arange(index.num_images)
    try:
        ids = np.asarray(image_ids, dtype=np.int64)
    except OverflowError:
        raise DatasetError(f"{index.path}: image ids must fit in 64 bits") from None
    found = np.isin(ids, index.images["id"])
    if not found.all():
        missing = ", ".join(str(i) for i in ids[~found][:10])
        raise DatasetError(f"{index.path}: no image with id {missing}")
    return np.array([index.image_row(i) for i in ids], dtype=np.int64)


def category_pixels(index: CocoIndex) -> tuple[np.ndarray, bool]:
    """The pixel value of each category row for ``--labels coco``, and whether ids were renumbered.

    Pixel = category id, unless an id is 0 or below (it would read as background) or 255 or
    above (it would not fit, or read as overlap): then the categories, sorted by id, become
    1..N. Raises ExplorerError when N > 254.
    """
    ids = index.category_ids
    if not len(ids) or (ids.min() > 0 and ids.max() < IGNORE_LABEL):
        return ids.astype(np.uint8), False
    if len(ids) >= IGNORE_LABEL:
        raise ExplorerError(
            f"{index.path}: {len(ids)} categories do not fit an 8-bit mask (at most 254); "
            "use --labels voc"
        )
    pixels = np.empty(len(ids), np.uint8)
    pixels[np.argsort(ids, kind="stable")] = np.arange(1, len(ids) + 1)
    return pixels, True


def label_map(
    index: CocoIndex, labels: MaskLabels
) -> tuple[dict[int, PixelLabel], np.ndarray, bool]:
    """``(pixel value -> {"id", "name"}, pixel per category row, renumbered)`` for ``labels``."""
    if labels == "voc":
        pairs = zip(VOC_COCO_IDS, VOC_COCO_NAMES, strict=True)
        voc: dict[int, PixelLabel] = {
            k: {"id": i, "name": n} for k, (i, n) in enumerate(pairs, start=1)
        }
        return voc, np.zeros(0, np.uint8), False
    if labels != "coco":
        raise ExplorerError(f"unknown label set {labels!r}; valid: coco, voc")
    pixels, remapped = category_pixels(index)
    found: dict[int, PixelLabel] = {
        int(p): {"id": int(c["id"]), "name": str(c["name"])}
        for p, c in zip(pixels.tolist(), index.categories, strict=True)
    }
    return dict(sorted(found.items())), pixels, remapped


def mask_name(file_name: str, image_id: int) -> tuple[str, bool]:
    """The mask's path under the output folder for an image's ``file_name`` (see the module),
    and whether it keeps the file name (False: the base name of an absolute path, or the id)."""
    name = file_name.replace("\\", "/")
    absolute = bool(re.match(r"^[A-Za-z]:/", name)) or name.startswith("/")
    if absolute:  # keep the base name: the folders are the annotator's disk, not the dataset's
        name = name.rsplit("/", 1)[-1]
    parts = [p for p in name.split("/") if p not in ("", ".")]
    stem = PurePosixPath(parts[-1]).stem if parts else ""
    try:
        too_long = any(len(os.fsencode(p)) > MAX_NAME_BYTES for p in parts)
    except UnicodeEncodeError:
        too_long = True
    if too_long or not stem or stem in ("..", ".") or any(p == ".." or "\x00" in p for p in parts):
        return f"{image_id}.png", False
    return "/".join([*parts[:-1], stem + ".png"]), not absolute


def mask_names(index: CocoIndex) -> list[str]:
    """The PNG name (relative to the folder) an export of every image gives each image, in row
    order: what a reader of such a folder looks for."""
    used = {LABELS_FILE}
    ids, files = index.images["id"].tolist(), index.images["file_name"].tolist()
    return [_unique(mask_name(str(f), i)[0], i, used) for f, i in zip(files, ids, strict=True)]


def _unique(name: str, image_id: int, used: set[str]) -> str:
    """``name``, or ``<stem>-<image id>[-n].png`` beside it when this export already has it."""
    parent, _, base = name.rpartition("/")
    prefix, stem = (parent + "/" if parent else ""), base[: -len(".png")]
    candidate, n = name, 0
    while candidate.casefold() in used:  # case-insensitive file systems: x.png is X.png
        n += 1
        candidate = f"{prefix}{stem}-{image_id}" + (f"-{n}" if n > 1 else "") + ".png"
    used.add(candidate.casefold())
    return candidate


def image_mask(index: CocoIndex, row: int, labels: MaskLabels, pixels: np.ndarray):
    """The mask this export writes for image ``row`` and the annotations skipped drawing it:
    ``pixels`` is :func:`label_map`'s pixel per category row (``coco``; unused for ``voc``).
    Raises ExplorerError when the image cannot have one (unknown size, over the pixel limit)."""
    h, w = int(index.images["height"][row]), int(index.images["width"][row])
    if h <= 0 or w <= 0 or h * w > MAX_IMAGE_PIXELS:
        raise ExplorerError(
            f"image is {w}x{h}: no mask (at most {MAX_IMAGE_PIXELS // 10**6} megapixels)"
        )
    ann_rows = index.annotation_rows(row)
    if labels == "voc":
        rows, values = masks.semantic_labels(index, ann_rows, "voc")
    else:
        rows, values = ann_rows, pixels[index.annotations["category_row"][ann_rows]]
    return masks.paint_semantic(index, row, np.asarray(rows), np.asarray(values, np.uint8))


def _write_png(target: Path, mask: np.ndarray) -> None:
    """Write atomically (a full disk leaves no half PNG). Raises ExplorerError when the disk is
    full or read-only (the export stops), OSError for this file only."""
    from PIL import Image

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(target) as f:
            Image.fromarray(mask, mode="L").save(f, format="PNG", compress_level=1)
    except OSError as e:
        if e.errno in _FATAL_WRITE_ERRORS:
            raise ExplorerError(f"{target}: cannot write ({e.strerror})") from None
        raise


@dataclass
class _Progress:
    """An export under way: where it writes, the names it has taken (casefolded, see
    :func:`_unique`) and what happened to each image so far."""

    out_dir: Path
    used: set[str] = field(default_factory=lambda: {LABELS_FILE})
    renamed: list[RenamedMask] = field(default_factory=list)
    skipped_drawing: list[SkippedAnnotation] = field(default_factory=list)
    skipped_images: list[SkippedImage] = field(default_factory=list)
    written_names: list[str] = field(default_factory=list)


def _export_one(
    index: CocoIndex, row: int, labels: MaskLabels, pixels: np.ndarray, done: _Progress
) -> None:
    """Name, draw and write one image's mask, recording what happened in ``done``."""
    image_id, file_name = int(index.images["id"][row]), str(index.images["file_name"][row])
    natural, kept_name = mask_name(file_name, image_id)
    name = _unique(natural, image_id, done.used)
    if name != natural or not kept_name:
        done.renamed.append({"id": image_id, "file_name": file_name, "mask": name})
    try:
        target = resolve_image_path(done.out_dir, name)
        mask, bad = image_mask(index, row, labels, pixels)
    except FileChanged:
        raise  # every mask after it would be wrong too: the export stops
    except ExplorerError as e:
        done.skipped_images.append({"id": image_id, "error": str(e)})
        return
    done.skipped_drawing.extend(bad)
    try:
        _write_png(target, mask)  # a full disk raises ExplorerError: the export stops
    except OSError as e:
        done.skipped_images.append({"id": image_id, "error": f"{name}: {e.strerror or e}"})
        return
    done.written_names.append(name)


def export_semantic_masks(
    index: CocoIndex,
    out_dir: Path,
    labels: MaskLabels = "coco",
    image_ids: list[int] | None = None,
    progress: bool = True,
) -> ExportReport:
    """Write one semantic-mask PNG per image under ``out_dir`` (named as the module says) and
    ``labels.json`` (pixel value -> category).

    Args:
        index: the dataset.
        out_dir: output folder (created).
        labels: ``coco`` (category ids, renumbered 1..N when 0 or ids above 254 are in use) or
            ``voc`` (21 Pascal-VOC labels); 0 = background, 255 = overlap.
        image_ids: only these images (default: all).
        progress: show a tqdm bar on stderr.

    Raises:
        ExplorerError: bad ``labels`` or image ids, the folder cannot be created, or the disk is
            full or read-only (masks written so far stay; none is left half written).
    """
    from tqdm import tqdm

    pixel_map, pixels, remapped = label_map(index, labels)
    rows = select_image_rows(index, image_ids)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / LABELS_FILE, _labels_json(pixel_map, labels, remapped))
    except OSError as e:
        raise ExplorerError(f"{out_dir}: cannot write the output folder ({e.strerror})") from None
    done = _Progress(out_dir)
    # tqdm starts a monitor thread even when disabled: no bar, no tqdm (a library call stays
    # single-threaded, which lets the index parser fork)
    todo = rows.tolist()
    for row in tqdm(todo, desc="masks", unit="img", leave=False) if progress else todo:
        _export_one(index, row, labels, pixels, done)
    return ExportReport(
        written=len(done.written_names),
        out_dir=out_dir,
        label_map=pixel_map,
        remapped=remapped,
        skipped_opening=[f for f in index.health if f["severity"] == "error"],
        skipped_drawing=done.skipped_drawing,
        skipped_images=done.skipped_images,
        renamed=done.renamed,
    )


def _labels_json(
    pixel_map: dict[int, PixelLabel], labels: MaskLabels, remapped: bool
) -> LabelsFile:
    return {
        "labels": labels,
        "background": 0,
        "overlap": IGNORE_LABEL,
        "renumbered": remapped,
        "pixels": {str(p): v for p, v in pixel_map.items()},
    }
