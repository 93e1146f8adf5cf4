"""Instance and semantic masks, decoded with pycocotools' mask API.

Decoding follows ``pycocotools.coco.COCO.annToMask`` (polygons are rasterised with
``frPyObjects`` and merged, uncompressed RLE goes through ``frPyObjects``, compressed RLE is
used as is), so every mask equals pycocotools' bit for bit. The semantic mask follows
torchvision's segmentation reference (``ConvertCocoPolysToMask``): pixel = label of the
annotation covering it, 0 = background, 255 where two or more annotations overlap; crowd
annotations count like any other.
"""

from __future__ import annotations

import itertools

import msgspec
import numpy as np
from pycocotools import mask as mask_utils

from explorer.coco.index import CocoIndex
from explorer.coco.labels import voc_labels
from explorer.coco.segmentations import (
    POLYGON_MARGIN,
    POLYGON_REACH,
    SEG_BOX,
    SEG_POLYGON,
    SkippedAnnotation,
    checked_rle,
    polygon_parts,
)
from explorer.errors import ExplorerError, SegmentationError
from explorer.types import IGNORE_LABEL


def annotation_rle(index: CocoIndex, ann_row: int) -> dict:
    """The compressed RLE of one annotation, at its image's size.

    Nothing reaches pycocotools unchecked (its C code trusts its input): polygons must be
    finite numbers near the image (``segmentations.polygon_parts``), RLE counts must cover the image
    exactly (``segmentations.checked_rle``).

    Raises:
        SegmentationError: the annotation is a box only (no segmentation, or an image of
            unknown size), or its segmentation cannot be decoded safely, saying why.
    """
    kind = int(index.annotations["seg_kind"][ann_row])
    if kind == SEG_BOX:
        ann_id = int(index.annotations["id"][ann_row])
        raise SegmentationError(f"annotation {ann_id}: a box only, no segmentation: no mask")
    return _rle_of(index, ann_row, index.segmentation(ann_row))


def annotation_rles(index: CocoIndex, ann_rows: np.ndarray) -> list[dict | None]:
    """:func:`annotation_rle` of many annotations, their texts read in one pass and their
    polygons rasterised one call per image; None for a box-only annotation or one whose
    segmentation cannot be decoded safely."""
    rows = np.asarray(ann_rows, np.int64)
    kinds = index.annotations["seg_kind"][rows]
    out: list[dict | None] = [None] * len(rows)
    polygons = np.flatnonzero(kinds == SEG_POLYGON)
    for i, rle in zip(polygons.tolist(), _polygon_rles(index, rows[polygons]), strict=True):
        out[i] = rle
    others = np.flatnonzero((kinds != SEG_BOX) & (kinds != SEG_POLYGON))
    for i, raw in zip(others.tolist(), index.segmentations(rows[others]), strict=True):
        out[i] = _checked_rle_of(index, int(rows[i]), raw)
    return out


def _checked_rle_of(index: CocoIndex, ann_row: int, raw: bytes) -> dict | None:
    try:
        return _rle_of(index, ann_row, raw)
    except SegmentationError:
        return None


_POLYGON_LISTS = msgspec.json.Decoder(list[list[list[float]]])


def _polygon_rles(index: CocoIndex, rows: np.ndarray) -> list[dict | None]:
    """Polygon annotations' RLEs as :func:`annotation_rle` makes them (the same checks, the
    same pycocotools calls), decoded in one go and rasterised one ``frPyObjects`` call per
    image; a file whose texts do not decode together is done one annotation at a time."""
    texts = index.segmentations(rows)
    try:
        decoded = _POLYGON_LISTS.decode(b"[" + b",".join(texts) + b"]")
    except (msgspec.DecodeError, msgspec.ValidationError):
        return [_checked_rle_of(index, int(r), t) for r, t in zip(rows, texts, strict=True)]
    # parts of 3+ points, each cut to whole points (pycocotools reads only those)
    parts = [[p[: len(p) // 2 * 2] for p in polys if len(p) >= 6] for polys in decoded]
    image_rows = index.annotations["image_row"][rows]
    heights, widths = index.images["height"], index.images["width"]
    ok = _safe_polygons(parts, heights[image_rows], widths[image_rows])
    out: list[dict | None] = [None] * len(rows)
    for image in np.unique(image_rows[ok]).tolist():
        h, w = int(heights[image]), int(widths[image])
        members = np.flatnonzero(ok & (image_rows == image)).tolist()
        rles = mask_utils.frPyObjects([p for m in members for p in parts[m]], h, w)
        at = 0
        for m in members:
            n = len(parts[m])
            out[m] = rles[at] if n == 1 else mask_utils.merge(rles[at : at + n])
            at += n
    return out


def _safe_polygons(
    parts: list[list[list[float]]], heights: np.ndarray, widths: np.ndarray
) -> np.ndarray:
    """Per annotation: it has a part, and every coordinate is finite and within
    ``POLYGON_REACH`` sides (plus a margin) of its image (``segmentations.polygon_parts``)."""
    counts = np.fromiter((sum(len(p) for p in ps) // 2 for ps in parts), np.int64, len(parts))
    xy = np.fromiter(
        itertools.chain.from_iterable(itertools.chain.from_iterable(parts)), np.float64
    ).reshape(-1, 2)
    owner = np.repeat(np.arange(len(parts)), counts)
    reach = np.stack([POLYGON_REACH * widths, POLYGON_REACH * heights], axis=1) + POLYGON_MARGIN
    with np.errstate(invalid="ignore"):
        bad_point = ~(np.abs(xy) <= reach[owner]).all(axis=1)  # NaN compares False
    ok = counts > 0
    ok[owner[bad_point]] = False
    return ok


def _rle_of(index: CocoIndex, ann_row: int, raw: bytes) -> dict:
    anns = index.annotations
    image_row = int(anns["image_row"][ann_row])
    h, w = int(index.images["height"][image_row]), int(index.images["width"][image_row])
    try:
        if int(anns["seg_kind"][ann_row]) == SEG_POLYGON:
            return mask_utils.merge(mask_utils.frPyObjects(polygon_parts(raw, h, w), h, w))
        rle = checked_rle(raw, h, w)
        if isinstance(rle.counts, list):
            return mask_utils.frPyObjects({"size": [h, w], "counts": rle.counts}, h, w)
        return {"size": [h, w], "counts": rle.counts.encode()}
    except (TypeError, ValueError) as e:
        raise SegmentationError(f"annotation {int(anns['id'][ann_row])}: {e}") from None


def annotation_mask(index: CocoIndex, ann_row: int) -> np.ndarray:
    """One annotation's binary mask, ``(height, width)`` uint8 of 0/1."""
    return np.ascontiguousarray(mask_utils.decode(annotation_rle(index, ann_row)))


def box_only(index: CocoIndex, ann_rows: np.ndarray) -> np.ndarray:
    """True for annotations without a segmentation (a detection export's boxes): no mask."""
    return index.annotations["seg_kind"][ann_rows] == SEG_BOX


def instance_masks(
    index: CocoIndex, image_row: int, ann_rows: np.ndarray | None = None, boxes: bool = False
) -> tuple[np.ndarray, np.ndarray, list[SkippedAnnotation]]:
    """Binary masks of an image's annotations.

    Args:
        index: the dataset.
        image_row: the image.
        ann_rows: which of its annotations (default: all, in file order).
        boxes: give box-only annotations (no segmentation) their box as the mask; without it
            they are left out, neither kept nor skipped (they have no mask by design, and a
            detection-only file would otherwise list every annotation as skipped).

    Returns:
        ``(masks, rows, skipped)``: ``masks`` is ``(n, height, width)`` uint8 for the ``rows``
        that decoded (in the order of ``ann_rows``); ``skipped`` lists ``{"id", "error"}`` for
        those that did not.
    """
    if ann_rows is None:
        ann_rows = index.annotation_rows(image_row)
    ann_rows = np.asarray(ann_rows, np.int64)
    boxes_only = box_only(index, ann_rows)
    masks, rows, skipped = _decoded_masks(index, image_row, ann_rows[~boxes_only])
    if not boxes or not boxes_only.any():
        return masks, rows, skipped
    box_rows = ann_rows[boxes_only]
    box_masks = np.stack([_box_mask(index, image_row, r) for r in box_rows.tolist()])
    rows = np.concatenate([rows, box_rows])
    masks = np.concatenate([masks, box_masks])
    position = {r: i for i, r in enumerate(ann_rows.tolist())}
    order = np.argsort([position[r] for r in rows.tolist()], kind="stable")
    return masks[order], rows[order], skipped


def instance_masks_at(
    index: CocoIndex, image_row: int, ann_rows: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, list[SkippedAnnotation]]:
    """:func:`instance_masks` (box-only annotations left out) drawn at ``size`` (width, height)
    instead of the image's: polygons are scaled before they are rasterised, so a thumbnail
    costs a thumbnail's pixels; RLE masks are decoded and sampled (nearest pixel centre)."""
    sw, sh = size
    masks, rows = [], []
    skipped: list[SkippedAnnotation] = []
    for r in np.asarray(ann_rows, np.int64)[~box_only(index, ann_rows)].tolist():
        try:
            masks.append(_mask_at(index, image_row, r, size))
            rows.append(r)
        except (SegmentationError, TypeError, ValueError) as e:
            skipped.append({"id": int(index.annotations["id"][r]), "error": str(e)})
    stack = np.stack(masks) if masks else np.zeros((0, sh, sw), np.uint8)
    return stack, np.array(rows, np.int64), skipped


def _mask_at(index: CocoIndex, image_row: int, ann_row: int, size: tuple[int, int]) -> np.ndarray:
    """One annotation's mask drawn at ``size`` (width, height) instead of its image's."""
    h, w = int(index.images["height"][image_row]), int(index.images["width"][image_row])
    sw, sh = size
    if int(index.annotations["seg_kind"][ann_row]) == SEG_POLYGON:
        parts = polygon_parts(index.segmentation(ann_row), h, w)
        scale = np.array([sw / w, sh / h])
        scaled = [
            (np.asarray(p[: len(p) // 2 * 2], np.float64).reshape(-1, 2) * scale).ravel().tolist()
            for p in parts
        ]
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(scaled, sh, sw)))
    full = mask_utils.decode(annotation_rle(index, ann_row))
    ys = ((np.arange(sh) + 0.5) * h / sh).astype(np.int64)
    xs = ((np.arange(sw) + 0.5) * w / sw).astype(np.int64)
    return np.ascontiguousarray(full[np.ix_(ys, xs)])


def _box_mask(index: CocoIndex, image_row: int, ann_row: int) -> np.ndarray:
    """An annotation's box as a binary mask of its image's size (pixels the box covers)."""
    h, w = int(index.images["height"][image_row]), int(index.images["width"][image_row])
    x, y, bw, bh = (float(v) for v in index.annotations["bbox"][ann_row])
    mask = np.zeros((h, w), np.uint8)
    if all(np.isfinite((x, y, bw, bh))):
        x0, y0 = int(np.clip(np.floor(x), 0, w)), int(np.clip(np.floor(y), 0, h))
        x1, y1 = int(np.clip(np.ceil(x + bw), 0, w)), int(np.clip(np.ceil(y + bh), 0, h))
        mask[y0:y1, x0:x1] = 1
    return mask


def _decoded_masks(
    index: CocoIndex, image_row: int, ann_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[SkippedAnnotation]]:
    """:func:`instance_masks` of annotations that have a segmentation (pycocotools decodes)."""
    h, w = int(index.images["height"][image_row]), int(index.images["width"][image_row])
    rles, rows = [], []
    skipped: list[SkippedAnnotation] = []
    for r in np.asarray(ann_rows).tolist():
        try:
            rles.append(annotation_rle(index, r))
            rows.append(r)
        except SegmentationError as e:
            skipped.append({"id": int(index.annotations["id"][r]), "error": str(e)})
    if not rles:
        return np.zeros((0, h, w), np.uint8), np.zeros(0, np.int64), skipped
    try:
        masks = mask_utils.decode(rles)  # (h, w, n), Fortran order
    except (TypeError, ValueError):  # one bad RLE: decode one by one, skip it
        good = []
        for rle, r in zip(rles, rows, strict=True):
            try:
                good.append((mask_utils.decode([rle])[:, :, 0], r))
            except (TypeError, ValueError) as e:
                skipped.append({"id": int(index.annotations["id"][r]), "error": f"bad RLE ({e})"})
        if not good:
            return np.zeros((0, h, w), np.uint8), np.zeros(0, np.int64), skipped
        return np.stack([m for m, _ in good]), np.array([r for _, r in good], np.int64), skipped
    return np.ascontiguousarray(masks.transpose(2, 0, 1)), np.array(rows, np.int64), skipped


def semantic_labels(
    index: CocoIndex, ann_rows: np.ndarray, labels: str = "coco"
) -> tuple[np.ndarray, np.ndarray]:
    """The annotations that take part in a semantic mask, and the pixel value of each.

    ``coco``: every annotation, valued by its category id. ``voc``: only annotations of the 20
    Pascal-VOC categories, valued 1..20 (torchvision's ``FilterAndRemapCocoCategories``); a
    category is a VOC class by its name (:func:`explorer.coco.labels.voc_labels`), never by its id.
    """
    cat_ids = index.annotations["category_id"][ann_rows]
    if labels == "coco":
        if len(cat_ids) and cat_ids.max() >= IGNORE_LABEL:
            raise ExplorerError(
                f"{index.path}: category ids above 254 do not fit an 8-bit mask; use --labels voc"
            )
        return np.asarray(ann_rows), cat_ids.astype(np.uint8)
    if labels == "voc":
        voc = voc_labels(index.categories)
        values = np.array([voc.get(int(c), 0) for c in cat_ids.tolist()], np.uint8)
        keep = values > 0
        return np.asarray(ann_rows)[keep], values[keep]
    raise ExplorerError(f"unknown label set {labels!r}; valid: coco, voc")


def semantic_mask(
    index: CocoIndex, image_row: int, labels: str = "coco"
) -> tuple[np.ndarray, list[SkippedAnnotation]]:
    """The image's semantic mask, ``(height, width)`` uint8, and the annotations skipped."""
    rows, values = semantic_labels(index, index.annotation_rows(image_row), labels)
    return paint_semantic(index, image_row, rows, values)


def paint_semantic(
    index: CocoIndex, image_row: int, rows: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, list[SkippedAnnotation]]:
    """Annotation ``rows`` of an image painted with their ``values`` (0 elsewhere, the ignore
    label where two or more overlap, as torchvision's reference), and the annotations skipped.

    Box-only annotations (``boxes_only`` in health) are left out, not listed as skipped: they
    have no region to paint, and a detection-only file would list every annotation.
    """
    found, kept, skipped = instance_masks(index, image_row, rows)
    h, w = int(index.images["height"][image_row]), int(index.images["width"][image_row])
    target = np.zeros((h, w), np.uint8)
    if not len(kept):
        return target, skipped
    values = values[np.isin(rows, kept)]  # ``kept`` is ``rows`` less the left out, in order
    count = np.zeros((h, w), np.uint16)
    for m, v in zip(found, values, strict=True):
        np.maximum(target, m * v, out=target)
        count += m
    target[count > 1] = IGNORE_LABEL
    return target, skipped
