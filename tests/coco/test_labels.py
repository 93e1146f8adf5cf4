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
