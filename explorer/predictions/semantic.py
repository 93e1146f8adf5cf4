"""A folder of semantic-mask PNGs as predictions: what ``export-masks`` writes, or a model's own.

The layout is export-masks' (:mod:`explorer.coco.export`): one PNG per image at its file name's
path with ``.png`` (:func:`explorer.coco.export.mask_names`), and optionally ``labels.json``
(pixel value -> category; ``labels`` says ``coco`` or ``voc``). Without ``labels.json`` a pixel
value is a category id of the dataset, 0 background. The overlap value (255, or ``labels.json``'s
``overlap``) is a pixel the prediction leaves unlabelled: scored as wrong, never as a class.

The truth a folder meets is the dataset's own semantic mask in the folder's label set, painted as
export-masks paints it (torchvision's reference: 255 where objects overlap, ignored), so a
folder exported from the dataset scores 1.0 against it.

One bad file is never fatal: a PNG that is a link out of the folder, unreadable, not a PNG, not
8-bit single channel (mode ``L`` or ``P``: a palette image's indices are its values), of another
size than its image, or holding a value that names no category raises :class:`MaskSkipped` with
its reason, and the caller counts it. Images with no PNG are not predicted; PNGs named after no
image are counted as unmatched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import msgspec
import numpy as np

from explorer.coco import export
from explorer.coco._records import lookup
from explorer.coco.images import resolve_image_path
from explorer.coco.index import CocoIndex
from explorer.coco.labels import VOC_NAMES, voc_label_of
from explorer.errors import ExplorerError, PredictionsError, UnsafePathError
from explorer.paths import NotARegularFile, open_regular
from explorer.types import IGNORE_LABEL, MaskLabels

# Why a PNG is skipped, each a short phrase (the key of the skipped counts).
OUTSIDE = "a link out of the folder"
UNREADABLE = "unreadable"
NOT_PNG = "not a PNG"
NOT_8_BIT = "not 8-bit single channel"
WRONG_SIZE = "not its image's size"
NOT_IN_LABELS = "a pixel value labels.json does not map to a category of the dataset"
NOT_A_CATEGORY = "a pixel value not a category id of the dataset"
NO_TRUTH = "its image has no mask (unknown size or over the pixel limit)"

_Pixel = Annotated[int, msgspec.Meta(ge=0, le=255)]


class _Category(msgspec.Struct):
    id: int
    name: str = ""


class _LabelsFile(msgspec.Struct):
    """``labels.json`` as :class:`explorer.coco.export.LabelsFile` writes it."""

    pixels: dict[_Pixel, _Category]
    labels: MaskLabels = "coco"
    background: _Pixel = 0
    overlap: _Pixel = IGNORE_LABEL


class MaskSkipped(ExplorerError):
    """One PNG cannot be scored; ``reason`` is one of this module's phrases."""

    def __init__(self, reason: str, path: object):
        super().__init__(f"{path}: {reason}")
        self.reason = reason


@dataclass(frozen=True, eq=False)
class PixelSpace:
    """How a folder's pixel values meet the truth.

    ``to_class[v]`` is pixel value ``v``'s class (``0..n-1``), ``n`` for the unlabelled
    (overlap) value, -1 for a value that names no category (``stray`` says why); ``names[c]``
    names class ``c`` (None where no category has it). ``truth_pixels`` is export-masks' pixel
    value per category row (``coco``; empty for ``voc``).
    """

    labels: MaskLabels
    to_class: np.ndarray
    names: tuple[str | None, ...]
    truth_pixels: np.ndarray
    stray: str

    @property
    def n(self) -> int:
        return len(self.names)

    def truth(self, index: CocoIndex, image_row: int) -> np.ndarray:
        """The image's semantic truth in this space (``(h, w)`` uint8, 255 ignored)."""
        try:
            mask, _ = export.image_mask(index, image_row, self.labels, self.truth_pixels)
        except ExplorerError:
            raise MaskSkipped(NO_TRUTH, index.images["file_name"][image_row]) from None
        return mask


@dataclass(frozen=True, eq=False)
class MaskFolder:
    """A folder of PNGs matched to a dataset's images.

    ``image_rows`` are the images with a PNG (row order), ``names`` each one's PNG relative to
    ``folder``; ``pngs`` counts the PNG files found, ``not_predicted`` the images without one,
    ``unmatched`` the PNGs named after no image.
    """

    folder: Path
    space: PixelSpace
    image_rows: np.ndarray
    names: tuple[str, ...]
    pngs: int
    not_predicted: int
    unmatched: int


def open_mask_folder(folder: str | os.PathLike, index: CocoIndex) -> MaskFolder:
    """The folder's PNGs matched to ``index``'s images, and its pixel space.

    Raises:
        PredictionsError: not a folder, no PNG in it, none named after an image of the
            dataset, or a ``labels.json`` that is not export-masks' (or absent where the
            dataset's category ids do not fit 1..254).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PredictionsError(f"{folder}: not a folder")
    found = _png_files(folder)
    if not found:
        raise PredictionsError(
            f"{folder}: no PNG files (a folder of semantic-mask PNGs, as export-masks writes)"
        )
    expected = export.mask_names(index)
    present = np.array([name in found for name in expected], dtype=bool)
    if not present.any():
        raise PredictionsError(
            f"{folder}: {len(found)} PNG files, none named after an image of {index.path.name} "
            f"(e.g. {expected[0] if expected else 'no images'})"
        )
    rows = np.flatnonzero(present)
    return MaskFolder(
        folder=folder,
        space=pixel_space(folder, index),
        image_rows=rows,
        names=tuple(expected[r] for r in rows.tolist()),
        pngs=len(found),
        not_predicted=int(index.num_images - len(rows)),
        unmatched=len(found - set(expected)),
    )


def _png_files(folder: Path) -> set[str]:
    """Every ``.png`` under ``folder`` (links to folders not followed), as ``a/b.png``."""
    found: set[str] = set()
    for here, _, files in os.walk(folder):
        rel = os.path.relpath(here, folder)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        found.update(prefix + f for f in files if f.lower().endswith(".png"))
    return found


def pixel_space(folder: Path, index: CocoIndex) -> PixelSpace:
    """The :class:`PixelSpace` of a folder: its ``labels.json``'s, or category ids."""
    labels = _labels_file(folder / export.LABELS_FILE)
    if labels is None:
        return _id_space(folder, index)
    if labels.labels == "voc":
        return _voc_space(labels)
    return _coco_space(labels, index)


def _labels_file(path: Path) -> _LabelsFile | None:
    if not path.exists():
        return None
    try:
        with open_regular(path) as f:
            labels = msgspec.json.decode(f.read(), type=_LabelsFile)
    except (OSError, NotARegularFile) as e:
        raise PredictionsError(f"{path}: cannot read ({e})") from None
    except msgspec.DecodeError as e:
        raise PredictionsError(f"{path}: not export-masks' labels.json ({e})") from None
    taken = {labels.background, labels.overlap} & set(labels.pixels)
    if taken or labels.background == labels.overlap:
        raise PredictionsError(
            f"{path}: background {labels.background} and overlap {labels.overlap} must differ "
            "and name no category"
        )
    return labels


def _table(values: dict[int, int], n: int, background: int, overlap: int) -> np.ndarray:
    """``to_class``: background -> 0, overlap -> ``n`` (unlabelled), ``values``, the rest -1."""
    to_class = np.full(256, -1, np.int64)
    to_class[background] = 0
    to_class[overlap] = n
    for value, cls in values.items():
        to_class[value] = cls
    return to_class


def _coco_names(index: CocoIndex, pixels: np.ndarray) -> tuple[str | None, ...]:
    names: list[str | None] = [None] * (int(pixels.max(initial=0)) + 1)
    names[0] = "background"
    for p, c in zip(pixels.tolist(), index.categories, strict=True):
        names[p] = str(c["name"])
    return tuple(names)


def _id_space(folder: Path, index: CocoIndex) -> PixelSpace:
    """No ``labels.json``: pixel = category id (the dataset's own ids must fit 1..254)."""
    try:
        pixels, renumbered = export.category_pixels(index)
    except ExplorerError as e:
        raise PredictionsError(f"{folder}: {e}") from None
    if renumbered:
        raise PredictionsError(
            f"{folder}: no labels.json, and {index.path.name}'s category ids do not fit an "
            "8-bit mask (1..254): the folder needs export-masks' labels.json"
        )
    names = _coco_names(index, pixels)
    values = {p: p for p in pixels.tolist()}
    to_class = _table(values, len(names), 0, IGNORE_LABEL)
    return PixelSpace("coco", to_class, names, pixels, NOT_A_CATEGORY)


def _coco_space(labels: _LabelsFile, index: CocoIndex) -> PixelSpace:
    """``labels.json`` of ``coco``: each pixel value's category id, matched to the dataset's."""
    pixels, _ = export.category_pixels(index)
    values = np.array(sorted(labels.pixels), np.int64)
    ids = np.array([labels.pixels[v].id for v in values.tolist()], np.int64)
    rows = lookup(index.category_ids, ids)
    known = rows >= 0
    names = _coco_names(index, pixels)
    mapped = dict(zip(values[known].tolist(), pixels[rows[known]].tolist(), strict=True))
    to_class = _table(mapped, len(names), labels.background, labels.overlap)
    return PixelSpace("coco", to_class, names, pixels, NOT_IN_LABELS)


def _voc_space(labels: _LabelsFile) -> PixelSpace:
    """``labels.json`` of ``voc``: each pixel value's VOC label, by its category's name."""
    voc = {v: voc_label_of(c.name) for v, c in labels.pixels.items()}
    mapped = {v: label for v, label in voc.items() if label}
    to_class = _table(mapped, len(VOC_NAMES), labels.background, labels.overlap)
    return PixelSpace("voc", to_class, tuple(VOC_NAMES), np.zeros(0, np.uint8), NOT_IN_LABELS)


def read_mask(masks: MaskFolder, index: CocoIndex, k: int) -> np.ndarray:
    """The ``k``-th PNG as classes of :attr:`MaskFolder.space` (``(h, w)`` int64).

    Raises:
        MaskSkipped: the PNG cannot be scored, with the reason (see the module).
    """
    name, row = masks.names[k], int(masks.image_rows[k])
    try:
        path = resolve_image_path(masks.folder, name)
    except UnsafePathError:
        raise MaskSkipped(OUTSIDE, masks.folder / name) from None
    size = (int(index.images["width"][row]), int(index.images["height"][row]))
    classes = masks.space.to_class[_decode_png(path, size)]
    if (classes < 0).any():
        raise MaskSkipped(masks.space.stray, path)
    return classes


def _decode_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    """The PNG's values, ``(h, w)`` uint8, refused unless 8-bit single channel of ``size``
    (checked from the header, before decoding)."""
    from PIL import Image, UnidentifiedImageError

    try:
        f = open_regular(path)
    except (OSError, NotARegularFile):
        raise MaskSkipped(UNREADABLE, path) from None
    with f:
        try:
            with Image.open(f, formats=["PNG"]) as im:
                if im.mode not in ("L", "P"):
                    raise MaskSkipped(NOT_8_BIT, path)
                if im.size != size:
                    raise MaskSkipped(WRONG_SIZE, path)
                im.load()
                return np.asarray(im, dtype=np.uint8)
        except UnidentifiedImageError:
            raise MaskSkipped(NOT_PNG, path) from None
        except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
            raise MaskSkipped(UNREADABLE, path) from None
