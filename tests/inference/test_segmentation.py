"""Segmentation products: COCO results that pycocotools reads, evaluation that agrees with a
hand count."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.coco import masks
from explorer.coco.dataset import Dataset
from explorer.coco.labels import (
    VOC_COCO_IDS,
    VOC_NAMES,
)
from explorer.inference import cache, segmentation
from explorer.inference import runner as infer
from explorer.inference.options import RunOptions
from explorer.models import (
    WeightsFile,
    load_model,
)
from tests.helpers import pycoco, tiny


def test_segmentation_results_round_trip_through_pycocotools(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file))
    ref = pycoco(tiny("val2017")[0])
    rows = [0, 1, 2]
    results = []
    labels_of = {}
    for it, (labels, scores), _ in cache.predict(
        model, Dataset(index, images), infer.items_for_images(index, rows)
    ):
        results += segmentation.coco_results(model, index, it.image_row, labels, scores)
        labels_of[int(index.images["id"][it.image_row])] = labels
    loaded = ref.loadRes(results) if results else None
    for r in results:
        label = VOC_COCO_IDS.index(r["category_id"]) + 1
        m = loaded.annToMask(
            next(
                a
                for a in loaded.anns.values()
                if a["image_id"] == r["image_id"] and a["category_id"] == r["category_id"]
            )
        )
        assert np.array_equal(m, labels_of[r["image_id"]] == label)


def test_evaluate_agrees_with_a_hand_count(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file))
    rows = [0, 1, 2, 3]
    ev = segmentation.evaluate_segmentation(model, Dataset(index, images), rows, "voc")
    correct = total = 0
    for it, (labels, _), _ in cache.predict(
        model, Dataset(index, images), infer.items_for_images(index, rows)
    ):
        target, _ = masks.semantic_mask(index, it.image_row, "voc")
        keep = target != 255
        correct += int((labels[keep] == target[keep]).sum())
        total += int(keep.sum())
    assert ev["images"] == 4 and ev["pixel_acc"] == pytest.approx(correct / total)
    assert set(ev["per_class_iou"]) == set(VOC_NAMES)


def test_voc_model_on_the_sample_scores_no_shape_as_a_voc_class(sample_root, mbv3_file):
    """Issue 12: shapes were scored as person, bicycle, car (mapped by id)."""
    from explorer.coco import open_index

    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    model = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file))
    space = segmentation.eval_space(model, index)
    assert space.space == "voc" and space.scorable == 0
    assert space.no_counterpart == [c["name"] for c in index.categories]
    ev = segmentation.evaluate_segmentation(
        model, Dataset(index, sample_root / "val2017"), [0, 1], options=RunOptions(workers=0)
    )
    truth_rows = np.array(ev["confusion"]).sum(1)
    assert truth_rows[0] > 0 and not truth_rows[1:].any()  # only background is true
    assert ev["no_counterpart"] == space.no_counterpart
