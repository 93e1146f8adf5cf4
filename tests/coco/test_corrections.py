"""Confirmed fixes become a corrected copy of the annotation file; decisions live in a sidecar."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as mask_utils

from explorer.coco import open_index
from explorer.coco.corrections import Fix, write_corrected
from explorer.errors import ExplorerError
from explorer.inference import reviews
from tests.helpers import pycoco, tiny


def test_relabel_remask_and_add_give_a_file_pycocotools_reads(tmp_path):
    ann, _ = tiny("val2017")
    before = ann.read_bytes()
    d = json.loads(before)
    first, second = d["annotations"][0], d["annotations"][1]
    image = next(i for i in d["images"] if i["id"] == second["image_id"])
    h, w = image["height"], image["width"]
    square = np.zeros((h, w), np.uint8)
    square[10:30, 20:60] = 1
    rle = mask_utils.encode(np.asfortranarray(square))["counts"].decode()
    fixes = [
        Fix("relabel", first["image_id"], first["id"], category_id=3),
        Fix("remask", second["image_id"], second["id"], category_id=second["category_id"], rle=rle),
        Fix("add", second["image_id"], category_id=1, bbox=(20.0, 10.0, 40.0, 20.0), rle=rle),
        Fix("relabel", 1, 999_999_999, category_id=1),
    ]
    out = tmp_path / "fixed.json"
    done = write_corrected(ann, fixes, out)
    assert ann.read_bytes() == before  # the user's file is untouched
    assert (done["relabelled"], done["remasked"], done["added"]) == (1, 1, 1)
    assert done["not_found"] == [999_999_999]
    coco = pycoco(out)
    assert coco.anns[first["id"]]["category_id"] == 3
    assert coco.annToMask(coco.anns[second["id"]]).sum() == 800
    assert coco.anns[second["id"]]["bbox"] == [20.0, 10.0, 40.0, 20.0]
    new = coco.anns[done["added_ids"][0]]
    assert new["iscrowd"] == 0 and new["area"] == 800 and new["image_id"] == second["image_id"]
    assert len(coco.anns) == len(d["annotations"]) + 1
    index = open_index(out)  # and our own reader takes it
    assert index.num_annotations == len(d["annotations"]) + 1


def test_the_annotation_file_itself_is_refused(tmp_path):
    ann, _ = tiny("val2017")
    with pytest.raises(ExplorerError, match="annotation file itself"):
        write_corrected(ann, [], ann)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ExplorerError, match="not a COCO instances file"):
        write_corrected(bad, [], tmp_path / "out.json")


def test_decisions_round_trip_and_a_damaged_sidecar_is_empty(tmp_path):
    ann = tmp_path / "a.json"
    ann.write_text("{}")
    row = {
        "kind": "missing",
        "annotation_id": -1,
        "image_id": 4,
        "category_id": 2,
        "bbox": [1.0, 2.0, 3.0, 4.0],
        "suggested_rle": "",
    }
    key = reviews.row_key(row)
    assert key == "missing:4:2:1.0,2.0,3.0,4.0"
    reviews.decide(ann, key, "confirmed")
    reviews.decide(ann, "wrong_label:7", "reviewed")
    assert reviews.load(ann) == {key: "confirmed", "wrong_label:7": "reviewed"}
    frame = pd.DataFrame([row, {**row, "kind": "wrong_label", "annotation_id": 7}])
    (fix,) = reviews.confirmed_fixes(frame, reviews.load(ann))
    assert fix.kind == "add" and fix.bbox == (1.0, 2.0, 3.0, 4.0) and fix.category_id == 2
    reviews.decide(ann, key, None)
    assert reviews.load(ann) == {"wrong_label:7": "reviewed"}
    reviews.reviews_path(ann).write_text("{not json")
    assert reviews.load(ann) == {}
