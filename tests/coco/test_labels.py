"""Label spaces and their maps: VOC-21 and ImageNet-1k to COCO categories."""

from __future__ import annotations

import json

from explorer.coco import labels as label_maps
from explorer.coco.labels import (
    VOC_COCO_IDS,
    VOC_COCO_NAMES,
    VOC_NAMES,
    coco_name_of_label,
    imagenet_to_coco,
)
from explorer.models.registry import get_spec, published_weights
from tests.helpers import pycoco, tiny


def test_label_maps():
    assert [coco_name_of_label("voc", i + 1, VOC_NAMES) for i in range(20)] == list(VOC_COCO_NAMES)
    ref = pycoco(tiny("val2017")[0])
    names = {c["id"]: c["name"] for c in ref.dataset["categories"]}
    assert [names[i] for i in VOC_COCO_IDS] == list(
        VOC_COCO_NAMES
    )  # every VOC class is a COCO category
    imagenet = published_weights(get_spec("alexnet")).meta["categories"]
    doc = json.loads((label_maps._DATA / "imagenet_to_coco.json").read_text())
    for e in doc["map"]:
        assert imagenet[e["index"]] == e["imagenet"] and e["coco"] in names.values()
    m = imagenet_to_coco()
    assert m[imagenet.index("Chihuahua")] == "dog" and m[imagenet.index("tabby")] == "cat"
    assert imagenet.index("tench") not in m  # a fish: no counterpart
    assert coco_name_of_label("voc", 0, VOC_NAMES) is None  # background


def test_categories_meet_voc_by_name_not_by_id(sample_root):
    """Issue 12: the sample's shapes (ids 1..7) are not COCO's person, bicycle, car..."""
    from explorer.coco import masks, open_index
    from explorer.coco.labels import name_key, voc_labels, without_counterpart

    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    assert voc_labels(index.categories) == {}
    names = [c["name"] for c in index.categories]
    assert without_counterpart(index.categories, {}) == names and "circle" in names
    for row in range(10):  # before: shapes painted as person, bicycle, car... (VOC 15, 2, 7)
        assert not masks.semantic_mask(index, row, "voc")[0].any()
    # VOC spellings under ids that are not COCO's find their class
    voc_named = [
        {"id": 11 + i, "name": n}
        for i, n in enumerate(["aeroplane", "Motorbike", "tvmonitor", "dining_table", "sofa"])
    ]
    assert voc_labels(voc_named) == {11: 1, 12: 14, 13: 20, 14: 11, 15: 18}
    assert name_key("potted plant") == name_key("pottedplant") == "pottedplant"
    # COCO's own list: the same as torchvision's id list (CAT_LIST)
    coco = pycoco(tiny("val2017")[0]).dataset["categories"]
    assert voc_labels(coco) == {cid: k for k, cid in enumerate(VOC_COCO_IDS, start=1)}
    assert len(without_counterpart(coco, voc_labels(coco))) == 60


def test_model_labels_meet_dataset_categories_by_name():
    from explorer.coco.labels import dataset_label_map

    cats = [{"id": 7, "name": "motorbike"}, {"id": 8, "name": "TV monitor"}, {"id": 9, "name": "x"}]
    got = dataset_label_map("voc", VOC_NAMES, cats)
    assert got[VOC_NAMES.index("motorbike")] == 7 and got[VOC_NAMES.index("tvmonitor")] == 8
    assert sum(g is not None for g in got) == 2
