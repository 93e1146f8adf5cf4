"""The columnar index against pycocotools, on real COCO files and the sample; its disk cache."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

from explorer import stats
from explorer.coco import _build, open_index
from tests.helpers import pycoco, tiny


def assert_matches_pycocotools(ann_path):
    index = open_index(ann_path)
    ref = pycoco(ann_path)
    assert index.num_images == len(ref.imgs)
    assert index.num_annotations == len(ref.anns)
    assert [c["id"] for c in index.categories] == [c["id"] for c in ref.dataset["categories"]]
    counts = stats.category_counts(index)
    for row, cat in enumerate(index.categories):
        anns = [a for a in ref.dataset["annotations"] if a["category_id"] == cat["id"]]
        assert counts["instances"][row] == len(anns), cat["name"]
        assert counts["images"][row] == len({a["image_id"] for a in anns}), cat["name"]
    for row in range(index.num_images):  # per-image lookups, same order as pycocotools
        image_id = int(index.images["id"][row])
        got = index.annotations["id"][index.annotation_rows(row)].tolist()
        assert got == [a["id"] for a in ref.imgToAnns[image_id]]
    a = ref.dataset["annotations"]
    assert index.annotations["bbox"].tolist() == [x["bbox"] for x in a]
    assert index.annotations["area"].tolist() == [x["area"] for x in a]
    assert index.annotations["iscrowd"].tolist() == [bool(x["iscrowd"]) for x in a]
    for r in range(index.num_annotations):
        assert json.loads(index.segmentation(r)) == a[r]["segmentation"]
    return index


@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_real_coco_matches_pycocotools(split):
    ann, _ = tiny(split)
    index = assert_matches_pycocotools(ann)
    assert int(index.annotations["iscrowd"].sum()) == {"val2017": 11, "train2017": 6}[split]


@pytest.mark.parametrize("split", ["val2017", "train2017"])
def test_sample_matches_pycocotools(sample_root, split):
    assert_matches_pycocotools(sample_root / "annotations" / f"instances_{split}.json")


def test_reopen_uses_cache_and_changed_file_is_reread(tmp_path, sample_root):
    src = sample_root / "annotations" / "instances_val2017.json"
    path = tmp_path / "a.json"
    path.write_bytes(src.read_bytes())
    first = open_index(path)
    again = open_index(path)
    assert not first.from_cache and again.from_cache
    for k in first.annotations:
        np.testing.assert_array_equal(first.annotations[k], again.annotations[k])
    doc = json.loads(path.read_text())
    doc["annotations"] = doc["annotations"][:10]
    path.write_text(json.dumps(doc))
    os.utime(path, ns=(1, 1))  # a new mtime and size: a new fingerprint
    changed = open_index(path)
    assert not changed.from_cache and changed.num_annotations == 10


def test_damaged_cache_is_rebuilt(tmp_path, sample_root):
    path = tmp_path / "a.json"
    path.write_bytes((sample_root / "annotations" / "instances_val2017.json").read_bytes())
    first = open_index(path)
    expected = np.array(first.annotations["bbox"])
    from explorer.settings import cache_dir

    damaged = cache_dir("index") / first.fingerprint / "ann_bbox.npy"
    del first  # its arrays map the file we damage
    damaged.unlink()
    damaged.write_bytes(b"garbage")
    again = open_index(path)
    assert not again.from_cache
    np.testing.assert_array_equal(again.annotations["bbox"], expected)


def test_two_process_parse_equals_one_process(monkeypatch, sample_root):
    """The forked half and the in-process half give exactly the single-process columns."""
    path = sample_root / "annotations" / "instances_train2017.json"
    monkeypatch.setattr(_build, "CHUNK", 50)  # small chunks so the sample is 'big enough'
    data, top = _build.read_top_level(path)
    assert len(top.annotations) >= 4 * 50 and threading.active_count() == 1
    one = _build.parse_annotations(top.annotations, data, _build.Problems())
    two = _build.parse_annotations_in_two(top.annotations, data, _build.Problems())
    assert one.keys() == two.keys()
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])


def test_copied_segmentations_when_msgspec_layout_unknown(monkeypatch, tmp_path, sample_root):
    """If Raw's memory layout ever changes, segmentations are copied into a blob instead."""
    path = tmp_path / "a.json"
    path.write_bytes((sample_root / "annotations" / "instances_val2017.json").read_bytes())
    monkeypatch.setattr(_build, "raw_layout_ok", lambda: False)
    index = open_index(path, use_cache=False)
    doc = json.loads(path.read_text())
    for r in range(index.num_annotations):
        assert json.loads(index.segmentation(r)) == doc["annotations"][r]["segmentation"]


def test_raw_layout_probe_holds_for_pinned_msgspec():
    assert _build.raw_layout_ok()


def test_lookups(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    image_id = int(index.images["id"][5])
    assert index.image_row(image_id) == 5
    with pytest.raises(KeyError):
        index.image_row(-1)
    assert index.category_row(9) == 6
    rows = index.annotation_rows(5)
    assert (index.annotations["image_id"][rows] == image_id).all()
