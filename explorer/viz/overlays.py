"""Pictures for people: the palette, mask/box/label overlays, thumbnails, JPEG bytes.

Everything is composed here, server-side, into RGB uint8 at display size, so a page sends a
small JPEG instead of asking Streamlit to re-encode big arrays on every rerun.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from explorer.coco import masks as coco_masks
from explorer.coco.dataset import Dataset
from explorer.coco.images import load_rgb, resolve_image_path
from explorer.coco.index import CocoIndex
from explorer.errors import ExplorerError
from explorer.evaluation.image_outcomes import ImageMatches
from explorer.paths import atomic_write_bytes, cache_dir
from explorer.types import IGNORE_LABEL

if TYPE_CHECKING:
    from explorer.predictions.results import Detections

MAX_SIDE = 1024
THUMB_SIDE = 192


def palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours, the same for the same ``n`` (one per category row).

    Hues step by the golden angle so neighbouring rows differ; lightness and saturation
    alternate so that even 80 categories stay apart.
    """
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    sat = np.where(np.arange(n) % 3 == 1, 0.55, 0.85)
    val = np.where(np.arange(n) % 2 == 1, 0.75, 0.95)
    return (
        np.array([colorsys.hsv_to_rgb(h, s, v) for h, s, v in zip(hues, sat, val, strict=True)])
        .reshape(n, 3)
        .__mul__(255)
        .round()
        .astype(np.uint8)
    )


def hex_colour(rgb: np.ndarray) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class OverlayOptions:
    """What to draw over an image. Hashable, so it can key a cache."""

    masks: bool = True
    boxes: bool = True
    labels: bool = True
    crowd: bool = True
    alpha: float = 0.5
    categories: tuple[int, ...] = ()  # only these category ids (empty: all)
    highlight: int | None = None  # an annotation id drawn on top, the rest dimmed
    max_side: int = MAX_SIDE
    grey: bool = False  # the photo in grey: the colours drawn over it are the only colours


def load_image(dataset: Dataset, image_row: int) -> tuple[np.ndarray, str | None]:
    """The image as RGB at its annotated size, or a grey canvas and the reason it is missing."""
    index, images_dir = dataset.index, dataset.images
    w, h = int(index.images["width"][image_row]), int(index.images["height"][image_row])
    if images_dir is None:
        return np.full((h, w, 3), 96, np.uint8), "no image folder chosen: masks only"
    try:
        path = resolve_image_path(images_dir, str(index.images["file_name"][image_row]))
        return load_rgb(path, (w, h)), None
    except ExplorerError as e:
        return np.full((h, w, 3), 96, np.uint8), str(e)


def selected_rows(index: CocoIndex, image_row: int, opts: OverlayOptions) -> np.ndarray:
    """The image's annotation rows that the options show."""
    rows = index.annotation_rows(image_row)
    anns = index.annotations
    keep = np.ones(len(rows), bool)
    if not opts.crowd:
        keep &= ~anns["iscrowd"][rows]
    if opts.categories:
        keep &= np.isin(anns["category_id"][rows], opts.categories)
    return rows[keep]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def compose_overlay(
    dataset: Dataset,
    image_row: int,
    opts: OverlayOptions = OverlayOptions(),
    colours: dict[int, tuple[int, int, int]] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """The image with masks, boxes and labels drawn over it, downscaled to ``opts.max_side``.
    The image is downscaled first and the masks are drawn at that size (a thumbnail costs a
    thumbnail's pixels). A box-only annotation (a detection export) shows its box wherever a
    mask would show; a missing image is a grey canvas crossed out and marked "missing".
    ``colours`` (annotation row -> RGB) paints those annotations in their own colour rather
    than their category's (a predictions layer's outcomes).

    Returns:
        ``(rgb, notes)``: notes say what could not be shown (missing image, bad masks).
    """
    from PIL import Image

    index = dataset.index
    img, missing = load_image(dataset, image_row)
    notes = [missing] if missing else []
    drawn = _Drawn(
        index,
        image_row,
        selected_rows(index, image_row, opts),
        opts,
        palette(len(index.categories)),
        colours or {},
    )
    scale = min(1.0, opts.max_side / max(img.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))
    if opts.grey:
        img = greyscale(img)
    if opts.masks and len(drawn.rows):
        img, bad = _paint_masks(img, drawn)
        notes += bad
    pil = Image.fromarray(img)
    if missing and dataset.images is not None:
        _missing_mark(pil)
    _draw_boxes_and_labels(pil, drawn, scale)
    return np.asarray(pil), notes


@dataclass(frozen=True)
class _Drawn:
    """What one overlay draws: the image's annotation rows the options show, each in its own
    colour when it has one, else in the palette's colour of its category."""

    index: CocoIndex
    image_row: int
    rows: np.ndarray
    opts: OverlayOptions
    colours: np.ndarray  # RGB per category row
    own: dict[int, tuple[int, int, int]]  # RGB by annotation row

    def colour(self, ann_row: int) -> tuple[int, int, int]:
        if ann_row in self.own:
            return self.own[ann_row]
        r, g, b = (int(c) for c in self.colours[self.index.annotations["category_row"][ann_row]])
        return r, g, b


def _paint_masks(img: np.ndarray, drawn: _Drawn) -> tuple[np.ndarray, list[str]]:
    """``img`` with the annotations' masks blended in (drawn at its size); notes on masks that
    failed."""
    index, image_row, opts = drawn.index, drawn.image_row, drawn.opts
    anns = index.annotations
    h, w = img.shape[:2]
    if (w, h) == (int(index.images["width"][image_row]), int(index.images["height"][image_row])):
        inst, kept, skipped = coco_masks.instance_masks(index, image_row, drawn.rows)
    else:
        inst, kept, skipped = coco_masks.instance_masks_at(index, image_row, drawn.rows, (w, h))
    out = img.astype(np.float32)
    for m, r in zip(inst, kept, strict=True):
        a = opts.alpha
        if opts.highlight is not None:
            a = min(1.0, a * 1.6) if anns["id"][r] == opts.highlight else a * 0.35
        colour = np.array(drawn.colour(int(r)), np.float32)
        sel = m.astype(bool)
        out[sel] = out[sel] * (1 - a) + colour * a
    notes = [f"annotation {s['id']} not drawn: {s['error']}" for s in skipped]
    return out.clip(0, 255).astype(np.uint8), notes


def _missing_mark(pil) -> None:
    """Cross out a missing image's canvas and say so, so it is not taken for a grey photo."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(pil)
    w, h = pil.size
    red = (200, 40, 40)
    width = max(2, max(w, h) // 100)
    draw.line([(0, 0), (w - 1, h - 1)], fill=red, width=width)
    draw.line([(0, h - 1), (w - 1, 0)], fill=red, width=width)
    font = _font(max(14, max(w, h) // 12))
    box = draw.textbbox((0, 0), "image missing", font=font)
    x, y = (w - (box[2] - box[0])) / 2, (h - (box[3] - box[1])) / 2
    draw.rectangle([x - 6, y - 4, x + box[2] - box[0] + 6, y + box[3] - box[1] + 8], fill=red)
    draw.text((x, y), "image missing", fill=(255, 255, 255), font=font)


def _draw_boxes_and_labels(pil, drawn: _Drawn, scale: float) -> None:
    from PIL import ImageDraw

    index, rows, opts = drawn.index, drawn.rows, drawn.opts
    anns = index.annotations
    box_only = coco_masks.box_only(index, rows)
    if not (opts.boxes or opts.labels or (opts.masks and box_only.any())):
        return
    draw = ImageDraw.Draw(pil)
    font = _font(max(11, int(12 * max(pil.size) / 640)))
    for r, only_box in zip(rows.tolist(), box_only.tolist(), strict=True):
        x, y, w, h = (float(v) * scale for v in anns["bbox"][r])
        colour = drawn.colour(r)
        width = 3 if anns["id"][r] == opts.highlight else 2 if max(pil.size) > 400 else 1
        if opts.boxes or (opts.masks and only_box):
            draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        if opts.labels:
            name = index.categories[int(anns["category_row"][r])]["name"]
            text = f"{name} (crowd)" if anns["iscrowd"][r] else name
            _label(draw, font, text, (x, y), colour)


def _label(draw, font, text: str, at: tuple[float, float], colour: tuple) -> None:
    """A category name on a filled tag just above ``at`` (x, y), in black or white for
    contrast."""
    x, y = at
    tx, ty = x, max(0.0, y - font.size - 3)
    box = draw.textbbox((tx, ty), text, font=font)
    draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=colour)
    draw.text((tx, ty), text, fill=(0, 0, 0) if sum(colour) > 380 else (255, 255, 255), font=font)


def letterbox(rgb: np.ndarray, width: int, height: int, fill: int = 240) -> np.ndarray:
    """Fit ``rgb`` inside a ``width`` x ``height`` canvas, centred (so grids line up)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    canvas = np.full((height, width, 3), fill, np.uint8)
    small = (
        np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))
        if size != (w, h)
        else rgb
    )
    y0, x0 = (height - size[1]) // 2, (width - size[0]) // 2
    canvas[y0 : y0 + size[1], x0 : x0 + size[0]] = small
    return canvas


def encode_jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    """Lossless bytes, for pictures whose exact colours carry meaning (a JPEG smears colour
    across borders: between red and green it paints orange)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def thumbnail_jpeg(dataset: Dataset, image_row: int, side: int = THUMB_SIDE) -> bytes:
    """A small JPEG with masks drawn, cached on disk under ``<cache>/thumbs/<fingerprint>/``
    and named by the image file's size and modification time: a thumbnail drawn from one
    folder is never served for another, nor once its image is gone or changed."""
    index = dataset.index
    image_id = int(index.images["id"][image_row])
    source = _image_file_stamp(dataset, image_row)
    path = cache_dir("thumbs", f"{index.fingerprint}-{side}") / f"{image_id}-{source}.jpg"
    if source and path.is_file():
        return path.read_bytes()
    rgb, notes = compose_overlay(
        dataset,
        image_row,
        OverlayOptions(boxes=False, labels=False, alpha=0.45, max_side=side),
    )
    data = encode_jpeg(letterbox(rgb, side, side * 3 // 4), quality=80)
    if source and not notes:  # a missing image may appear later: do not cache its placeholder
        atomic_write_bytes(path, data)
    return data


def _image_file_stamp(dataset: Dataset, image_row: int) -> str:
    """The image file's folder, size and modification time in a few characters ("" when it
    cannot be read: nothing to cache)."""
    if dataset.images is None:
        return ""
    try:
        path = resolve_image_path(dataset.images, str(dataset.index.images["file_name"][image_row]))
        st = path.stat()
    except (OSError, ExplorerError):
        return ""
    key = f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


# ------------------------------------------------------------------ a predictions file's layer

OUTCOME_COLOURS: dict[str, tuple[int, int, int]] = {
    "TP": (40, 200, 60),
    "FP": (240, 40, 40),
    "FN": (255, 150, 0),
    "ignored": (160, 160, 160),
}
"""The colour of each outcome a predictions layer draws (COCO's matching at IoU 0.5)."""
OUTCOME_MEANINGS = {
    "TP": "object found, and its detection",
    "FP": "detection of no object",
    "FN": "object missed",
    "ignored": "crowd",
}


@dataclass(frozen=True)
class PredictionLayer:
    """What :func:`draw_predictions` draws over one image: its matches at a score threshold,
    the records they come from (masks, keypoints) and the dataset (missed objects' boxes, names,
    skeletons); ``tags`` puts each detection's name and score on a tag under its box,
    ``missed`` draws the objects nobody found, ``width`` is the lines' (0: by the drawing's
    size)."""

    matches: ImageMatches
    detections: Detections
    index: CocoIndex
    tags: bool = True
    missed: bool = True
    width: int = 0


def object_colours(matches: ImageMatches) -> dict[int, tuple[int, int, int]]:
    """Each of the image's annotations (by row) in its outcome's colour: what
    :func:`compose_overlay` paints under a predictions layer."""
    return {
        int(r): OUTCOME_COLOURS[str(o)]
        for r, o in zip(matches.object_rows.tolist(), matches.object_outcome, strict=True)
    }


def draw_predictions(
    rgb: np.ndarray, layer: PredictionLayer, image_size: tuple[int, int]
) -> np.ndarray:
    """``rgb`` (the image drawn at some scale of its ``image_size``, width x height, its objects
    best painted in :func:`object_colours`) with the layer over it, in :data:`OUTCOME_COLOURS`:
    each kept detection dashed and unfilled (a mask's outline for segm results; keypoints as
    points joined by the category's skeleton), each missed object's box solid and thicker; the
    best-scoring detection on top, and every tag over every line."""
    from PIL import Image, ImageDraw

    m, scale = layer.matches, rgb.shape[1] / max(image_size[0], 1)
    width = layer.width or (2 if max(rgb.shape[:2]) > 400 else 1)
    out = rgb.copy()
    order = np.argsort(m.score, kind="stable").tolist()  # worst first: the best drawn on top
    if layer.detections.rles is not None:
        for i in order:
            _dashed_outline(out, layer.detections.rles.rle(int(m.result_row[i])), m.outcome[i])
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    anns = layer.index.annotations
    boxes = [[float(v) * scale for v in box] for box in m.bbox]
    for r in m.missed_rows.tolist() if layer.missed else []:
        x, y, w, h = (float(v) * scale for v in anns["bbox"][r])
        draw.rectangle([x, y, x + w, y + h], outline=OUTCOME_COLOURS["FN"], width=width + 1)
    for i in order:
        if layer.detections.rles is None:
            _dashed_rectangle(draw, boxes[i], OUTCOME_COLOURS[str(m.outcome[i])], width)
        if layer.detections.keypoints is not None:
            _keypoints(draw, layer, i, scale)
    if layer.tags:
        _tags(draw, layer, boxes, order, scale)
    return np.asarray(pil)


def _tags(
    draw, layer: PredictionLayer, boxes: list[list[float]], order: list[int], scale: float
) -> None:
    """A "missed NAME" tag above each missed object, a "NAME SCORE" tag under each detection
    (``boxes``: theirs at the drawing's scale)."""
    size = draw.im.size
    font = _font(max(11, int(13 * max(size) / 640)))
    anns, m = layer.index.annotations, layer.matches
    for r in m.missed_rows.tolist() if layer.missed else []:
        name = layer.index.categories[int(anns["category_row"][r])]["name"]
        x, y = (float(v) * scale for v in anns["bbox"][r][:2])
        _label(draw, font, f"missed {name}", (x, y), OUTCOME_COLOURS["FN"])
    for i in order:
        name = _category_name(layer.index, int(m.category_id[i]))
        tag = (f"{name} {m.score[i]:.2f}", OUTCOME_COLOURS[str(m.outcome[i])])
        _tag_below(draw, font, boxes[i], tag, size)


def _category_name(index: CocoIndex, category_id: int) -> str:
    return next((c["name"] for c in index.categories if c["id"] == category_id), str(category_id))


def _dashed_rectangle(draw, box: list[float], colour: tuple, width: int) -> None:
    x, y, w, h = box
    dash = max(3.0, 3.0 * width)
    corners = np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)])
    for start, stop in zip(corners[:-1], corners[1:], strict=True):
        length = float(np.abs(stop - start).max())
        at = np.arange(0.0, length, 2 * dash) / max(length, 1e-9)
        ends = np.minimum(at + dash / max(length, 1e-9), 1.0)
        for f, e in zip(at.tolist(), ends.tolist(), strict=True):
            a, b = start + (stop - start) * f, start + (stop - start) * e
            # a dark rim under each dash: it stays visible over a mask of its own colour
            draw.line([tuple(a), tuple(b)], fill=(20, 20, 20), width=width + 2)
            draw.line([tuple(a), tuple(b)], fill=colour, width=width)


def _dashed_outline(out: np.ndarray, rle: dict, outcome: str) -> None:
    """A mask's outline painted into ``out`` (drawn at any size of the mask), dashed."""
    from pycocotools import mask as mask_utils

    full = mask_utils.decode(rle).astype(bool)
    h, w = out.shape[:2]
    ys = np.minimum((np.arange(h) * full.shape[0] / h).astype(np.int64), full.shape[0] - 1)
    xs = np.minimum((np.arange(w) * full.shape[1] / w).astype(np.int64), full.shape[1] - 1)
    m = full[ys][:, xs]
    inner = m.copy()
    inner[1:] &= m[:-1]
    inner[:-1] &= m[1:]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    if max(h, w) > 400:  # two pixels thick, as boxes are at this size
        edge[1:] |= edge[:-1]
        edge[:, 1:] |= edge[:, :-1]
    yy, xx = np.nonzero(edge)
    dash = 6 if max(h, w) > 400 else 3
    on = ((yy + xx) // dash) % 2 == 0
    out[yy[on], xx[on]] = OUTCOME_COLOURS[outcome]


def _keypoints(draw, layer: PredictionLayer, i: int, scale: float) -> None:
    """One detection's visible keypoints as dots, joined by its category's skeleton."""
    kp = layer.detections.keypoints
    if kp is None:
        return
    m = layer.matches
    xyv = kp[int(m.result_row[i])].reshape(-1, 3)
    seen = np.isfinite(xyv).all(axis=1) & (xyv[:, 2] > 0)
    colour = OUTCOME_COLOURS[str(m.outcome[i])]
    cat = next((c for c in layer.index.categories if c["id"] == int(m.category_id[i])), None)
    for a, b in cat.get("skeleton", []) if cat else []:
        if 0 < a <= len(xyv) and 0 < b <= len(xyv) and seen[a - 1] and seen[b - 1]:
            draw.line([tuple(xyv[a - 1, :2] * scale), tuple(xyv[b - 1, :2] * scale)], fill=colour)
    for x, y in (xyv[seen, :2] * scale).tolist():
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)


def _tag_below(draw, font, box: list[float], tag: tuple[str, tuple], size: tuple[int, int]) -> None:
    """A tag (text, colour) under a box, or inside its bottom edge where the image ends, moved
    left where it would run past the right edge: a detection's tag stays clear of the ground
    truth's labels, which sit above the boxes."""
    (x, y, _, h), (text, colour) = box, tag
    top = y + h + 1
    first = draw.textbbox((x, top), text, font=font)
    if first[3] + 1 > size[1]:
        top = max(0.0, y + h - font.size - 4)
    x = max(0.0, min(x, size[0] - (first[2] - first[0]) - 3))
    around = draw.textbbox((x, top), text, font=font)
    draw.rectangle([around[0] - 2, around[1] - 1, around[2] + 2, around[3] + 1], fill=colour)
    draw.text((x, top), text, fill=(0, 0, 0) if sum(colour) > 380 else (255, 255, 255), font=font)


def prediction_thumbnail_jpeg(
    dataset: Dataset, image_row: int, layer: PredictionLayer, side: int = THUMB_SIDE
) -> bytes:
    """:func:`thumbnail_jpeg` with a predictions layer over it (no tags: a thumbnail is too
    small for them). Not cached on disk: the layer changes with the threshold."""
    rgb, _ = compose_overlay(
        dataset,
        image_row,
        OverlayOptions(boxes=False, labels=False, alpha=0.45, max_side=side, grey=True),
        object_colours(layer.matches),
    )
    index = dataset.index
    size = (int(index.images["width"][image_row]), int(index.images["height"][image_row]))
    drawn = draw_predictions(
        rgb, PredictionLayer(layer.matches, layer.detections, index, False), size
    )
    return encode_jpeg(letterbox(drawn, side, side * 3 // 4), quality=80)


def outcome_legend(
    outcomes: Sequence[str] = tuple(OUTCOME_COLOURS),
) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, colour)`` of each of ``outcomes``, for :func:`legend_markdown`."""
    return [(f"{o}: {OUTCOME_MEANINGS[o]}", OUTCOME_COLOURS[o]) for o in outcomes]


# ---------------------------------------------------------------------------- predictions

ERROR_COLOURS = {
    "correct": (46, 204, 64),
    "wrong class": (255, 65, 54),
    "missed": (255, 176, 0),
    "false positive": (177, 13, 201),
    "ignored": (128, 128, 128),
}
"""The colour of each code of :func:`error_codes` (1, 2, ...), in code order: what the error
overlay paints and its legend shows."""
ERROR_NAMES = dict(enumerate(ERROR_COLOURS, start=1))


def label_colours(index: CocoIndex, category_of_label: list[int | None]) -> np.ndarray:
    """RGB per label: its dataset category's palette colour, grey when it has none, black for
    background (label whose category is None at position 0 of a segmenter)."""
    by_id = category_colours(index)
    out = np.full((256, 3), 160, np.uint8)
    for label, cat in enumerate(category_of_label):
        if cat is not None:
            out[label] = by_id[cat]
    return out


def category_colours(index: CocoIndex) -> np.ndarray:
    """RGB indexed by category id (for semantic masks in COCO labels)."""
    out = np.full((256, 3), 160, np.uint8)
    for c, colour in zip(index.categories, palette(len(index.categories)), strict=True):
        if 0 <= c["id"] < 256:
            out[c["id"]] = colour
    return out


def blend_labels(
    rgb: np.ndarray,
    labels: np.ndarray,
    colours: np.ndarray,
    alpha: float,
    skip: tuple[int, ...] = (0,),
) -> np.ndarray:
    """Paint ``labels`` (a label map of the image's size) over ``rgb``; ``skip`` stays clear."""
    out = rgb.astype(np.float32)
    paint = ~np.isin(labels, skip)
    out[paint] = out[paint] * (1 - alpha) + colours[labels[paint]].astype(np.float32) * alpha
    return out.clip(0, 255).astype(np.uint8)


def legend(
    labels: np.ndarray,
    colours: np.ndarray,
    names: list[str] | dict[int, str],
    skip: tuple[int, ...] = (0,),
) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, colour)`` of each value painted in ``labels`` (``skip`` left out), in value
    order; ``names[v]`` names value ``v`` (a list, or a dict: values it lacks read "label v")."""
    present = [v for v in np.unique(labels).tolist() if v not in skip]
    return [(_name(names, v) or f"label {v}", _rgb(colours[v])) for v in present]


def _name(names: list[str] | dict[int, str], value: int) -> str | None:
    if isinstance(names, dict):
        return names.get(value)
    return names[value] if value < len(names) else None


def _rgb(colour: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in colour)
    return r, g, b


def legend_markdown(entries: list[tuple[str, tuple[int, int, int]]]) -> str:
    """A colour legend as HTML-in-markdown: a coloured square and the name, on one line."""
    import html

    return " &nbsp; ".join(
        f"<span style='color:rgb{c}'>■</span> {html.escape(str(name))}" for name, c in entries
    )


def error_codes(target: np.ndarray, pred: np.ndarray, ignore: int = IGNORE_LABEL) -> np.ndarray:
    """Per pixel: 0 background right, 1 correct object, 2 wrong class, 3 missed, 4 false positive,
    5 ignored (both maps in the same label space, 0 = background)."""
    codes = np.zeros(target.shape, np.uint8)
    obj_t, obj_p = target != 0, pred != 0
    codes[obj_t & (pred == target)] = 1
    codes[obj_t & obj_p & (pred != target)] = 2
    codes[obj_t & ~obj_p] = 3
    codes[~obj_t & obj_p] = 4
    codes[target == ignore] = 5
    return codes


def _error_colours() -> np.ndarray:
    colours = np.zeros((256, 3), np.uint8)
    colours[1 : len(ERROR_COLOURS) + 1] = list(ERROR_COLOURS.values())
    return colours


def error_overlay(rgb: np.ndarray, codes: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The error codes painted in :data:`ERROR_COLOURS` over the image in grey (background right
    left unpainted): a photo's own colours would tint the blend (red under "correct" reads
    brown) and show colours the legend does not name."""
    return blend_labels(greyscale(rgb), codes, _error_colours(), alpha, skip=(0,))


def greyscale(rgb: np.ndarray) -> np.ndarray:
    """The image in grey (ITU-R 601 luma), still RGB."""
    luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(luma.round().clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)


def error_legend(codes: np.ndarray) -> list[tuple[str, tuple[int, int, int]]]:
    """``(name, colour)`` of each error painted in ``codes``: the overlay's own colours."""
    return legend(codes, _error_colours(), ERROR_NAMES, skip=(0,))


def heat_overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """A small 0..255 map (uint8) upsampled over the image, blue (weak) to red (strong)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    big = np.asarray(Image.fromarray(heat).resize((w, h), Image.Resampling.BILINEAR))
    ramp = np.stack([np.linspace(0, 255, 256), np.zeros(256), np.linspace(255, 0, 256)], 1)
    return blend_labels(rgb, big, ramp.astype(np.uint8), alpha, skip=())


@dataclass(frozen=True)
class AnnotatedObject:
    """One annotation as drawn: its box ([x, y, w, h]) and its mask (None: the box alone)."""

    box: Sequence[float] | np.ndarray
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class PaintedLabels:
    """A label map and the RGB colour of each label value (what :func:`blend_labels` paints)."""

    labels: np.ndarray
    colours: np.ndarray


def object_views(
    rgb: np.ndarray,
    shown: AnnotatedObject,
    seen: PaintedLabels | np.ndarray | None,
    side: int = 200,
    context: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """One object seen twice, cropped around its box (grown by ``context``): the annotation
    (its mask tinted, or only its box when it has none) and ``seen`` (a segmenter's labels, or
    the image as a model's output was drawn over it) over the same crop (the image alone when
    ``seen`` is None). Both letterboxed to ``side`` x ``side``."""
    from PIL import Image, ImageDraw

    from explorer.coco.images import crop_box

    box, mask = shown.box, shown.mask
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = crop_box(box, w, h, context)
    truth = rgb.copy()
    if mask is not None and mask.shape == rgb.shape[:2]:
        on = mask.astype(bool)
        truth[on] = (truth[on] * 0.45 + np.array([255, 220, 0]) * 0.55).astype(np.uint8)
    pil = Image.fromarray(truth)
    bx, by, bw, bh = (float(v) for v in box)
    ImageDraw.Draw(pil).rectangle([bx, by, bx + bw, by + bh], outline=(255, 220, 0), width=2)
    truth = np.asarray(pil)
    if isinstance(seen, np.ndarray):
        said = seen if seen.shape == rgb.shape else rgb
    elif seen is None or seen.labels.shape != rgb.shape[:2]:
        said = rgb
    else:
        said = blend_labels(rgb, seen.labels, seen.colours, 0.55)
    return letterbox(truth[y0:y1, x0:x1], side, side), letterbox(said[y0:y1, x0:x1], side, side)
