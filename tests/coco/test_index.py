"""The columnar index against pycocotools, on real COCO files and the sample; its disk cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from explorer.coco import _annotations, open_index, stats
from explorer.errors import DatasetError
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
    from explorer.paths import cache_dir

    damaged = cache_dir("index") / first.fingerprint / "instances_bbox.npy"
    del first  # its arrays map the file we damage
    damaged.unlink()
    damaged.write_bytes(b"garbage")
    again = open_index(path)
    assert not again.from_cache
    np.testing.assert_array_equal(again.annotations["bbox"], expected)


def open_both_ways(path, monkeypatch, expect_fast=True):
    """The index built the fast way (spans by byte search, forked) and the slow way."""
    monkeypatch.setattr(_annotations, "SPAN_BYTES", 3000)  # small spans: the fast path engages
    slow_calls = []
    with monkeypatch.context() as m:
        real = _annotations.spans_from_raws
        m.setattr(_annotations, "spans_from_raws", lambda *a: slow_calls.append(1) or real(*a))
        fast = open_index(path, use_cache=False)
    assert bool(slow_calls) != expect_fast, "the fast path was (not) taken"
    with monkeypatch.context() as m:
        m.setattr(_annotations, "locate_spans", lambda data: None)
        slow = open_index(path, use_cache=False)
    return fast, slow


def assert_same_index(a, b):
    assert a.categories == b.categories and a.health == b.health
    for table in ("images", "annotations"):
        for k in getattr(a, table):
            np.testing.assert_array_equal(getattr(a, table)[k], getattr(b, table)[k], err_msg=k)


def test_fast_span_search_equals_full_decode(monkeypatch, sample_root):
    path = sample_root / "annotations" / "instances_train2017.json"
    # threads other tests left behind (a job queue's worker) would keep the parse from forking:
    # the child only decodes and pickles, so here it may fork anyway
    monkeypatch.setattr(_annotations.threading, "active_count", lambda: 1)
    monkeypatch.setattr(_annotations, "SPAN_BYTES", 3000)
    located = _annotations.locate_spans(path.read_bytes())
    assert located and len(located[2]) > 10
    fast, slow = open_both_ways(path, monkeypatch)
    assert_same_index(fast, slow)
    assert_matches_pycocotools(path)


@pytest.mark.parametrize(
    "variant",
    [
        "pretty",
        "categories_first",
        "annotations_last",
        "nested_decoy",
        "bad_record",
        "annotations_key_in_string",
    ],
)
def test_fast_span_search_on_awkward_layouts(monkeypatch, tmp_path, sample_root, variant):
    """Whatever the layout, the fast path gives the full decode's answer (or steps aside)."""
    doc = json.loads((sample_root / "annotations" / "instances_train2017.json").read_text())
    path = tmp_path / "a.json"
    if variant == "pretty":
        text = json.dumps(doc, indent=2)
    elif variant == "categories_first":
        text = json.dumps(
            {
                "categories": doc["categories"],
                "annotations": doc["annotations"],
                "images": doc["images"],
            }
        )
    elif variant == "annotations_last":
        text = json.dumps({k: doc[k] for k in ("images", "categories", "annotations")})
    elif variant == "nested_decoy":
        text = json.dumps({"extra": {"annotations": [{"id": 1}, {"id": 2}] * 2000}, **doc})
    elif variant == "bad_record":
        doc["annotations"][700]["bbox"] = "oops"
        text = json.dumps(doc)
    else:
        doc["info"]["description"] = 'mentions "annotations": [ in a string'
        text = json.dumps(doc)
    path.write_text(text)
    fast, slow = open_both_ways(path, monkeypatch, expect_fast=variant != "nested_decoy")
    assert_same_index(fast, slow)
    assert fast.num_annotations == len(doc["annotations"]) - (variant == "bad_record")


def test_truncated_big_file_gives_the_full_decoders_message(monkeypatch, tmp_path, sample_root):
    path = tmp_path / "a.json"
    path.write_bytes(
        (sample_root / "annotations" / "instances_train2017.json").read_bytes()[:-3000]
    )
    monkeypatch.setattr(_annotations, "SPAN_BYTES", 3000)
    with pytest.raises(DatasetError, match="not valid JSON"):
        open_index(path, use_cache=False)


def test_copied_segmentations_when_msgspec_layout_unknown(monkeypatch, tmp_path, sample_root):
    """If Raw's memory layout ever changes, segmentations are copied into a blob instead."""
    path = tmp_path / "a.json"
    path.write_bytes((sample_root / "annotations" / "instances_val2017.json").read_bytes())
    monkeypatch.setattr(_annotations, "raw_layout_ok", lambda: False)
    index = open_index(path, use_cache=False)
    doc = json.loads(path.read_text())
    for r in range(index.num_annotations):
        assert json.loads(index.segmentation(r)) == doc["annotations"][r]["segmentation"]


def test_raw_layout_probe_holds_for_pinned_msgspec():
    assert _annotations.raw_layout_ok()


def test_lookups(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    image_id = int(index.images["id"][5])
    assert index.image_row(image_id) == 5
    with pytest.raises(KeyError):
        index.image_row(-1)
    assert index.category_row(9) == 6
    rows = index.annotation_rows(5)
    assert (index.annotations["image_id"][rows] == image_id).all()


def test_stale_temporary_index_folders_are_removed(tmp_path, monkeypatch):
    from tests.helpers import write_coco

    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path / "cache"))
    path = write_coco(tmp_path / "a.json", [{"id": 1, "width": 4, "height": 4}], [])
    open_index(path)
    root = tmp_path / "cache" / "index"
    stale, fresh = root / ".0123abcd-killed", root / ".4567abcd-running"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (0, 0))  # a build killed long ago
    path.write_text(path.read_text() + " ")  # a changed file: built again
    open_index(path)
    assert not stale.exists() and fresh.exists()


def test_stable_order_equals_a_stable_argsort_past_16_bits():
    from explorer.coco._build import stable_order

    rows = np.random.default_rng(0).integers(0, 200_000, 50_000).astype(np.int32)
    assert (stable_order(rows) == np.argsort(rows, kind="stable")).all()
    assert stable_order(rows[:0]).tolist() == []
