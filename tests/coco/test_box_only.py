"""A detection export (boxes, no segmentation) in the rest of the product: no mask is invented,
nothing is reported as broken, boxes show where masks would, and Compare judges each box."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.coco import masks, open_index
from explorer.coco.dataset import Dataset
from explorer.inference import compare
from explorer.inference.options import RunOptions
from explorer.inference.pair import ModelPair
from explorer.models import UNTRAINED, load_model
from explorer.viz import overlays
from tests.helpers import tiny


@pytest.fixture(scope="module")
def detections(tmp_path_factory):
    """coco-tiny's val2017 as CVAT and Roboflow export boxes: every segmentation []."""
    ann, images = tiny("val2017")
    doc = json.loads(ann.read_text())
    for a in doc["annotations"]:
        a["segmentation"] = []
    path = tmp_path_factory.mktemp("det") / "boxes.json"
    path.write_text(json.dumps(doc))
    return open_index(path), images


def test_box_only_annotations_have_no_mask_and_are_not_errors(detections):
    index, _ = detections
    found, rows, skipped = masks.instance_masks(index, 0)
    assert len(found) == len(rows) == 0 and skipped == []
    target, skipped = masks.semantic_mask(index, 0)
    assert not target.any() and skipped == []


def test_boxes_as_masks_cover_exactly_each_box(detections):
    index, _ = detections
    ann_rows = index.annotation_rows(0)
    found, rows, _ = masks.instance_masks(index, 0, boxes=True)
    assert rows.tolist() == ann_rows.tolist()
    for m, r in zip(found, rows.tolist(), strict=True):
        x, y, w, h = index.annotations["bbox"][r]
        ys, xs = np.nonzero(m)
        assert xs.min() == int(np.floor(x)) and ys.min() == int(np.floor(y))
        assert xs.max() + 1 == min(int(np.ceil(x + w)), m.shape[1])
        assert ys.max() + 1 == min(int(np.ceil(y + h)), m.shape[0])


def test_the_overlay_draws_boxes_where_masks_would_be_and_notes_nothing(detections):
    index, images = detections
    plain = overlays.OverlayOptions(masks=False, boxes=False, labels=False)
    masks_only = overlays.OverlayOptions(boxes=False, labels=False)
    bare, _ = overlays.compose_overlay(Dataset(index, images), 0, plain)
    drawn, notes = overlays.compose_overlay(Dataset(index, images), 0, masks_only)
    assert notes == []
    assert (np.abs(drawn.astype(int) - bare).max(axis=2) > 40).sum() > 500  # box outlines


def test_compare_judges_every_object_of_a_detection_file(detections):
    index, images = detections
    cls = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    seg = load_model(
        "smp-deeplabv3", UNTRAINED, encoder="resnet18", dataset_categories=index.categories
    )
    rows = np.arange(3)
    report = compare.compare(
        ModelPair(cls, seg), Dataset(index, images), rows, options=RunOptions(workers=0)
    )
    non_crowd = [
        a for r in rows for a in index.annotation_rows(r) if not index.annotations["iscrowd"][a]
    ]
    assert report.summary["objects"] == len(non_crowd) == len(report.objects) > 0
