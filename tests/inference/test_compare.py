"""Compare: the agreement logic on hand-made predictions, and the report on real models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.inference import compare, runner
from explorer.inference.options import RunOptions
from explorer.inference.pair import ModelPair
from explorer.models import UNTRAINED, load_model

W0 = RunOptions(workers=0)  # decoding in this process: the tests stay light


def test_outcomes_by_hand():
    cases = [  # truth, classifier, segmenter, comparable -> outcome
        (1, 1, 1, True, "both_right"),
        (1, 1, 3, True, "only_classifier_right"),
        (1, 3, 1, True, "only_segmenter_right"),
        (1, 3, 0, True, "both_wrong"),
        (1, -1, -1, True, "both_wrong"),
        (9, 9, 9, False, "not_comparable"),
    ]
    objects = [{"outcome": compare.outcome(t, c, s, k)} for t, c, s, k, _ in cases]
    assert [o["outcome"] for o in objects] == [want for *_, want in cases]
    s = compare.summarise(objects)
    assert s == {
        "objects": 6,
        "both_right": 1,
        "only_classifier_right": 1,
        "only_segmenter_right": 1,
        "both_wrong": 2,
        "not_comparable": 1,
    }
    assert s["objects"] == sum(s[k] for k in compare.OUTCOMES)


def test_by_size_and_confusion_by_hand():
    objs = [
        {
            "size": "small",
            "outcome": "both_right",
            "classifier_category": "a",
            "segmenter_category": "a",
        },
        {
            "size": "small",
            "outcome": "only_segmenter_right",
            "classifier_category": "b",
            "segmenter_category": "a",
        },
        {
            "size": "large",
            "outcome": "not_comparable",
            "classifier_category": "x",
            "segmenter_category": "y",
        },
    ]
    by = compare.by_size(objs)
    assert by["small"] == {"objects": 2, "classifier_acc": 0.5, "segmenter_acc": 1.0}
    assert by["large"]["objects"] == 0 and by["large"]["classifier_acc"] is None
    conf = compare.confusion(objs)
    assert conf == {"classifier": ["a", "b"], "segmenter": ["a"], "counts": [[1], [1]]}


def test_report_on_the_sample_adds_up_and_repeats_from_cache(sample_root, monkeypatch):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    cls = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    seg = load_model(
        "smp-deeplabv3", UNTRAINED, encoder="resnet18", dataset_categories=index.categories
    )
    rows = np.arange(6)
    report = compare.compare(
        ModelPair(cls, seg), Dataset(index, sample_root / "val2017"), rows, options=W0
    )
    non_crowd = [
        a for r in rows for a in index.annotation_rows(r) if not index.annotations["iscrowd"][a]
    ]
    s = report.summary
    assert (
        s["objects"] == len(non_crowd) == len(report.objects) == sum(s[k] for k in compare.OUTCOMES)
    )
    assert s["not_comparable"] == 0  # both models learn the dataset's own classes
    assert len(report.images) == 6 and all(
        c["classifier"] and c["segmenter"] for c in report.coverage
    )
    for o in report.objects:
        right_c = o["classifier_category"] == o["true_category"]
        right_s = o["segmenter_category"] == o["true_category"]
        assert o["outcome"] == compare.outcome(1, 1 if right_c else 2, 1 if right_s else 2, True)
        assert 0 <= o["segmenter_coverage"] <= 1

    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("a model ran again"))
    again = compare.compare(
        ModelPair(cls, seg), Dataset(index, sample_root / "val2017"), rows, options=W0
    )
    assert json.dumps(again.summary) == json.dumps(s)
    by_id = sorted(report.objects, key=lambda o: o["annotation_id"])  # a run yields in batches
    assert sorted(again.objects, key=lambda o: o["annotation_id"]) == by_id


def test_voc_segmenter_on_a_dataset_without_voc_classes_is_not_comparable(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    cls = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    seg = load_model("deeplabv3-mobilenet-v3-large", UNTRAINED)
    report = compare.compare(
        ModelPair(cls, seg), Dataset(index, sample_root / "val2017"), [0, 1], options=W0
    )
    s = report.summary
    assert s["not_comparable"] == s["objects"] > 0  # circles and stars have no VOC counterpart
    assert not any(c["segmenter"] for c in report.coverage)


def test_report_json_keeps_its_keys_and_order(sample_root):
    """``compare --out`` writes these keys, in this order (acceptance checks read them)."""
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    cls = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    seg = load_model("deeplabv3-mobilenet-v3-large", UNTRAINED)
    data = json.loads(
        json.dumps(
            compare.compare(
                ModelPair(cls, seg), Dataset(index, sample_root / "val2017"), [0], options=W0
            ).to_json()
        )
    )
    assert list(data) == [
        "summary",
        "objects",
        "images",
        "per_category",
        "by_size",
        "confusion",
        "classifier",
        "segmenter",
        "coverage",
    ]
    assert list(data["summary"]) == ["objects", *compare.OUTCOMES]
    assert list(data["objects"][0]) == list(compare.ObjectRow.__annotations__)
    assert list(data["images"][0]) == list(compare.ImageRow.__annotations__)


def test_size_class_edges():
    assert [compare.size_class(a) for a in (-1.0, 0.0, 32.0**2 - 1, 32.0**2, 96.0**2)] == [
        "small",
        "small",
        "small",
        "medium",
        "large",
    ]
