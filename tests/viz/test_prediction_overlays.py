"""A predictions layer drawn over an image (Browse's): each detection's outline in its outcome's
colour where its box (or its mask's edge) lies and nowhere inside it, missed objects' boxes in
orange, the annotations painted in their outcomes' colours over a grey photo; on coco-tiny with
results made by the acceptance generator."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest

from explorer.coco.dataset import Dataset
from explorer.evaluation.image_outcomes import image_matches, outcomes_at
from explorer.viz import overlays
from tests.evaluation.test_cocoeval import made, ours
from tests.helpers import tiny

IMAGE = 25603  # TPs, FPs and missed objects at 0.3


def _layer(tmp_path, kind: str, **extra):
    gt, images = tiny("val2017")
    index, detections, evaluation = ours(gt, made(gt, tmp_path / "dt.json", kind), kind)
    matches = image_matches(outcomes_at(evaluation, 0.3), index, detections, IMAGE)
    return Dataset(index, images), overlays.PredictionLayer(matches, detections, index, **extra)


def _near(rgb: np.ndarray, colour) -> np.ndarray:
    return np.abs(rgb.astype(int) - np.array(colour)).sum(axis=2) < 30


def _canvas(dataset: Dataset) -> tuple[np.ndarray, tuple[int, int]]:
    row = dataset.index.image_row(IMAGE)
    w, h = int(dataset.index.images["width"][row]), int(dataset.index.images["height"][row])
    return np.full((h, w, 3), 0, np.uint8), (w, h)


def _edge(box, shape) -> tuple[np.ndarray, np.ndarray]:
    """A box's outline (3 px either side of its edges) and its inside (5 px in), as masks."""
    x, y, w, h = (int(round(v)) for v in box)
    outline, inside = np.zeros(shape[:2], bool), np.zeros(shape[:2], bool)
    outline[max(y - 3, 0) : y + h + 4, max(x - 3, 0) : x + w + 4] = True
    outline[y + 3 : y + h - 2, x + 3 : x + w - 2] = False
    inside[y + 5 : y + h - 4, x + 5 : x + w - 4] = True
    return outline, inside


def test_each_detection_and_missed_object_is_outlined_in_its_outcomes_colour(tmp_path):
    dataset, layer = _layer(tmp_path, "bbox", tags=False)
    m = layer.matches
    assert {"TP", "FP"} <= set(m.outcome) and len(m.missed_rows)
    canvas, size = _canvas(dataset)
    drawn = overlays.draw_predictions(canvas, layer, size)
    for name in ("TP", "FP"):
        i = int(np.flatnonzero(m.outcome == name)[-1])  # the worst of them: drawn first
        outline, _ = _edge(m.bbox[i], drawn.shape)
        assert _near(drawn, overlays.OUTCOME_COLOURS[name])[outline].any(), name
    missed = dataset.index.annotations["bbox"][m.missed_rows[0]]
    outline, inside = _edge(missed, drawn.shape)
    orange = _near(drawn, overlays.OUTCOME_COLOURS["FN"])
    assert orange[outline].mean() > 0.3
    every = [*m.bbox, *dataset.index.annotations["bbox"][m.missed_rows]]
    unfilled = inside & ~np.any([_edge(b, drawn.shape)[0] for b in every], axis=0)
    assert not (drawn[unfilled] != 0).any()  # no fill: inside the boxes the canvas shows
    # without missed objects (a Mistakes card), no orange at all
    quiet = overlays.PredictionLayer(m, layer.detections, layer.index, tags=False, missed=False)
    assert not _near(
        overlays.draw_predictions(canvas, quiet, size), overlays.OUTCOME_COLOURS["FN"]
    ).any()


def _eroded(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out &= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def test_segm_results_are_outlined_along_their_masks(tmp_path):
    from pycocotools import mask as mask_utils

    dataset, layer = _layer(tmp_path, "segm", tags=False, missed=False)
    m = layer.matches
    canvas, size = _canvas(dataset)
    i = int(np.argmax(m.score))
    columns = ("result_row", "category_id", "score", "bbox", "outcome", "cause", "annotation_id")
    best = replace(m, **{c: getattr(m, c)[[i]] for c in (*columns, "iou")})  # it alone
    single = overlays.PredictionLayer(best, layer.detections, layer.index, tags=False, missed=False)
    drawn = overlays.draw_predictions(canvas, single, size)
    mask = mask_utils.decode(layer.detections.rles.rle(int(m.result_row[i]))).astype(bool)
    painted = (drawn != 0).any(axis=2)
    edge = mask & ~_eroded(mask)
    near_edge = ~_eroded(~edge)  # within a pixel of it (the outline is 2 px thick here)
    assert painted.sum() > 20
    assert not (painted & ~near_edge).any()  # on the mask's edge only, never inside
    assert _near(drawn, overlays.OUTCOME_COLOURS[str(m.outcome[i])])[painted].all()


def test_annotations_take_their_outcomes_colours_over_a_grey_photo(tmp_path):
    dataset, layer = _layer(tmp_path, "bbox")
    colours = overlays.object_colours(layer.matches)
    assert set(colours.values()) >= {overlays.OUTCOME_COLOURS["TP"], overlays.OUTCOME_COLOURS["FN"]}
    row = dataset.index.image_row(IMAGE)
    opts = overlays.OverlayOptions(boxes=False, labels=False, alpha=1.0, grey=True)
    rgb, _ = overlays.compose_overlay(dataset, row, opts, colours)
    rows = dataset.index.annotation_rows(row)
    painted = np.zeros(rgb.shape[:2], bool)
    from explorer.coco import masks

    inst, kept, _ = masks.instance_masks(dataset.index, row, rows)
    for mask in inst:
        painted |= mask.astype(bool)
    grey = rgb[~painted]
    assert (grey.max(axis=1) - grey.min(axis=1) <= 1).all()  # the photo, in grey
    top = kept[-1]  # drawn last: its own colour shows over its whole mask
    assert (rgb[inst[-1].astype(bool)] == colours[int(top)]).all()


def test_a_prediction_thumbnail_is_a_thumbnail(tmp_path):
    from PIL import Image

    dataset, layer = _layer(tmp_path, "bbox")
    data = overlays.prediction_thumbnail_jpeg(dataset, dataset.index.image_row(IMAGE), layer)
    assert Image.open(io.BytesIO(data)).size == (overlays.THUMB_SIDE, overlays.THUMB_SIDE * 3 // 4)


@pytest.mark.parametrize("outcomes", [("TP", "FP", "FN", "ignored"), ("TP", "FP")])
def test_the_outcome_legend_names_each_colour(outcomes):
    entries = overlays.outcome_legend(outcomes)
    assert [c for _, c in entries] == [overlays.OUTCOME_COLOURS[o] for o in outcomes]
    assert all(n.startswith(f"{o}: ") for (n, _), o in zip(entries, outcomes, strict=True))
