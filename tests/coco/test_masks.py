"""Masks equal pycocotools' bit for bit; semantic masks follow torchvision's reference."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.coco import masks, open_index
from explorer.coco.labels import VOC_COCO_IDS, VOC_COCO_NAMES
from tests.helpers import ROOT, pycoco, square, tiny, write_coco

WILD = ROOT.parent / "shared" / "wild-coco"  # labelling tools' exports


def reference_semantic(coco, image_id: int, labels: str) -> np.ndarray:
    """torchvision references/segmentation ConvertCocoPolysToMask (+ FilterAndRemap for voc,
    whose id list stands for names: a category is a VOC class by its COCO name, whatever its id)."""
    img = coco.imgs[image_id]
    anns = coco.imgToAnns[image_id]
    voc = {
        c["id"]: VOC_COCO_NAMES.index(c["name"]) + 1
        for c in coco.dataset["categories"]
        if c["name"] in VOC_COCO_NAMES
    }
    if labels == "voc":
        anns = [a for a in anns if a["category_id"] in voc]
    target = np.zeros((img["height"], img["width"]), np.uint8)
    if not anns:
        return target
    stack = np.stack([coco.annToMask(a) for a in anns]).astype(np.int32)
    cats = np.array([voc[a["category_id"]] if labels == "voc" else a["category_id"] for a in anns])
    target = (stack * cats[:, None, None]).max(0).astype(np.uint8)
    target[stack.sum(0) > 1] = 255
    return target


def check_dataset(ann_path):
    index = open_index(ann_path)
    ref = pycoco(ann_path)
    for r in range(index.num_annotations):
        ann = ref.anns[int(index.annotations["id"][r])]
        np.testing.assert_array_equal(masks.annotation_mask(index, r), ref.annToMask(ann))
    for row in range(index.num_images):
        image_id = int(index.images["id"][row])
        inst, rows, skipped = masks.instance_masks(index, row)
        assert not skipped
        assert inst.shape == (len(rows), index.images["height"][row], index.images["width"][row])
        for label_set in ("coco", "voc"):
            got, _ = masks.semantic_mask(index, row, label_set)
            np.testing.assert_array_equal(got, reference_semantic(ref, image_id, label_set))


@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_real_coco_masks_bit_for_bit(split):
    ann, _ = tiny(split)
    check_dataset(ann)


def test_sample_masks_bit_for_bit(sample_root):
    check_dataset(sample_root / "annotations" / "instances_val2017.json")


def test_real_coco_has_crowd_rle_and_multipart_polygons():
    index = open_index(tiny("val2017")[0])
    kinds = set(index.annotations["seg_kind"].tolist())
    assert kinds >= {0, 2}  # polygons and uncompressed (crowd) RLE


def test_semantic_overlap_and_voc_remap(tmp_path):
    """Hand-made: person (1) and car (3) overlap; toothbrush (90) is not a VOC class."""
    path = write_coco(
        tmp_path / "a.json",
        [{"id": 7, "width": 20, "height": 10, "file_name": "a.jpg"}],
        [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 1,
                "segmentation": square(0, 0, 6),
                "area": 36,
                "bbox": [0, 0, 6, 6],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 7,
                "category_id": 3,
                "segmentation": square(4, 0, 6),
                "area": 36,
                "bbox": [4, 0, 6, 6],
                "iscrowd": 0,
            },
            {
                "id": 3,
                "image_id": 7,
                "category_id": 90,
                "segmentation": square(8, 2, 6),
                "area": 36,
                "bbox": [8, 2, 6, 6],
                "iscrowd": 0,
            },
        ],
    )
    index = open_index(path)
    coco, _ = masks.semantic_mask(index, 0, "coco")
    voc, _ = masks.semantic_mask(index, 0, "voc")
    assert coco[1, 1] == 1 and coco[4, 12] == 90 and coco[5, 5] == 255  # person/car overlap
    assert coco[4, 9] == 255  # car/toothbrush overlap is 255 in COCO labels ...
    assert voc[4, 9] == VOC_COCO_IDS.index(3) + 1  # ... but toothbrush is dropped first in VOC
    assert voc[5, 5] == 255 and voc[1, 1] == VOC_COCO_IDS.index(1) + 1
    assert voc[4, 12] == 0
    assert set(np.unique(voc).tolist()) <= {0, 7, 15, 255}


def test_voc_map_covers_twenty_coco_categories():
    assert len(VOC_COCO_IDS) == 20 and len(set(VOC_COCO_IDS)) == 20
    ref = pycoco(tiny("val2017")[0])
    names = {c["id"]: c["name"] for c in ref.dataset["categories"]}
    assert {names[i] for i in VOC_COCO_IDS} >= {
        "person",
        "car",
        "dog",
        "tv",
        "dining table",
        "couch",
    }


def test_batch_rles_equal_one_at_a_time_on_real_files():
    """``annotation_rles`` (texts read at once, polygons rasterised per image) gives exactly
    what ``annotation_rle`` gives each annotation, and None where it refuses one."""
    from explorer.coco.masks import annotation_rle, annotation_rles
    from explorer.errors import ExplorerError

    files = [tiny("val2017")[0], *sorted(WILD.glob("*.json"))] if WILD.is_dir() else [tiny()[0]]
    compared = 0
    for path in files:
        try:
            index = open_index(path)
        except ExplorerError:  # a panoptic file, a results file: not instances
            continue
        batch = annotation_rles(index, np.arange(index.num_annotations))
        for row, got in enumerate(batch):
            try:
                want = annotation_rle(index, row)
            except ExplorerError:
                want = None
            assert (got is None) == (want is None), (path.name, row)
            if want is not None:
                assert (got["counts"], got["size"]) == (want["counts"], want["size"])
            compared += 1
    assert compared > 800
