"""Ground-truth keypoints in the index: ``num_keypoints`` and ``keypoints`` of each annotation and
a keypoint category's names and skeleton, against pycocotools on coco-mini's person_keypoints
file; files without keypoints; the cache; malformed entries."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.coco import _annotations, keypoints, open_index
from explorer.coco.instances import NUM_KEYPOINTS_NOT_GIVEN
from tests.helpers import ROOT, pycoco, write_coco

COCO_MINI = ROOT.parent / "shared" / "coco-mini" / "annotations"


def mini(name: str):
    path = COCO_MINI / name
    if not path.is_file():
        pytest.skip(f"coco-mini's {name} not found in {COCO_MINI} (the shared/coco-mini folder)")
    return path


def assert_keypoints_match_pycocotools(index, ref) -> None:
    """Every annotation's keypoints and num_keypoints as pycocotools holds them, exactly."""
    rows = np.arange(index.num_annotations)
    values = index.keypoints(rows)
    ids = index.annotations["id"].tolist()
    assert values.dtype == np.float64 and values.shape == (len(ref.anns), 51)
    assert values.tolist() == [[float(v) for v in ref.anns[i]["keypoints"]] for i in ids]
    counts = index.annotations["num_keypoints"]
    assert counts.dtype == np.int32
    assert counts.tolist() == [ref.anns[i]["num_keypoints"] for i in ids]


@pytest.mark.parametrize("way", ["default", "fast-forked", "blob", "small-batches"])
def test_keypoints_equal_pycocotools(monkeypatch, tmp_path, way):
    source = mini("person_keypoints_train2017.json")
    path = tmp_path / source.name  # a copy: each way builds its own index
    path.write_bytes(source.read_bytes())
    if way == "fast-forked":  # small spans: found by byte search, half decoded in a child
        monkeypatch.setattr(_annotations, "SPAN_BYTES", 3000)
        monkeypatch.setattr(_annotations.threading, "active_count", lambda: 1)
    if way == "blob":  # raw text copied into the cache's blob, not addressed in the file
        monkeypatch.setattr(_annotations, "raw_layout_ok", lambda: False)
    if way == "small-batches":  # many reads and many msgspec calls
        monkeypatch.setattr(keypoints, "BATCH_ROWS", 7)
        monkeypatch.setattr(keypoints, "READ_GAP", 64)
    index = open_index(path)
    ref = pycoco(path)
    assert_keypoints_match_pycocotools(index, ref)
    (person,) = index.categories
    assert person["keypoints"] == ref.cats[1]["keypoints"]
    assert person["skeleton"] == ref.cats[1]["skeleton"]
    assert not [f for f in index.health if f["check"] == "bad_category_keypoints"]


def test_rows_in_any_order_and_a_given_k():
    path = mini("person_keypoints_train2017.json")
    index, ref = open_index(path), pycoco(path)
    rows = np.random.default_rng(0).permutation(index.num_annotations)[:50]
    rows = np.concatenate([rows, rows[:3]])  # a row asked twice comes twice
    ids = index.annotations["id"][rows].tolist()
    want = [[float(v) for v in ref.anns[i]["keypoints"]] for i in ids]
    assert index.keypoints(rows).tolist() == want
    assert index.keypoints(rows, k=17).tolist() == want
    assert np.isnan(index.keypoints(rows, k=16)).all()  # no row has 16: all NaN
    assert index.keypoints(rows[:0]).shape == (0, 0)
    assert index.keypoints(rows[:0], k=17).shape == (0, 51)
    with pytest.raises(TypeError):
        index.keypoints(np.ones(index.num_annotations, bool))


def test_an_instances_file_has_no_keypoints():
    path = mini("instances_train2017.json")
    index = open_index(path)
    rows = np.arange(index.num_annotations)
    assert (index.annotations["num_keypoints"] == NUM_KEYPOINTS_NOT_GIVEN).all()
    assert (index.annotations["kp_length"] == 0).all()
    assert index.keypoints(rows).shape == (len(rows), 0)
    values = index.keypoints(rows, k=17)
    assert values.shape == (len(rows), 51) and np.isnan(values).all()
    assert all("keypoints" not in c and "skeleton" not in c for c in index.categories)


def test_the_cache_gives_the_same_arrays(tmp_path):
    path = tmp_path / "kp.json"
    path.write_bytes(mini("person_keypoints_train2017.json").read_bytes())
    built, again = open_index(path), open_index(path)
    assert not built.from_cache and again.from_cache
    rows = np.arange(built.num_annotations)
    assert np.array_equal(built.keypoints(rows), again.keypoints(rows))
    for column in ("num_keypoints", "kp_offset", "kp_length"):
        assert np.array_equal(built.annotations[column], again.annotations[column])
    assert built.categories == again.categories and "skeleton" in again.categories[0]
    assert_keypoints_match_pycocotools(again, pycoco(path))


KEYPOINTS_OK = [10, 20, 2, 0, 0, 0, 30.5, 40, 1]
MALFORMED = {
    2: [1, 2, 2, 3, 4],  # wrong length
    3: "10 20 2 0 0 0 30 40 1",  # a string
    4: None,  # null
    5: [10, 20, 2, 0, 0, "0", 30, 40, 1],  # a string among the numbers
    6: [[10, 20, 2], [0, 0, 0], [30, 40, 1]],  # nested
    7: {"x": 10},
    8: [10, 20, True, 0, 0, 0, 30, 40, 1],  # not a number
    9: [123456789, 20, 2, 0, 0, 0, 30, 40, 1],  # 1e400 in the file: beyond float64
    10: [],
    11: [10**400, 20, 2, 0, 0, 0, 30, 40, 1],  # an integer no float64 holds
}


def test_malformed_keypoints_are_nan_rows(tmp_path):
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "num_keypoints": 2},
        *(
            {"id": i, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "keypoints": kp}
            for i, kp in MALFORMED.items()
        ),
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "num_keypoints": None},
    ]
    annotations[0]["keypoints"] = KEYPOINTS_OK
    person = {"id": 1, "name": "person", "supercategory": "person"}
    names = {"keypoints": ["a", "b", "c"], "skeleton": [[1, 2], [2, 3]]}
    path = write_coco(
        tmp_path / "bad.json",
        [{"id": 1, "width": 64, "height": 64, "file_name": "a.jpg"}],
        annotations,
        [{**person, **names}],
    )
    path.write_text(path.read_text().replace("123456789", "1e400"))  # json.dumps: "Infinity"
    index = open_index(path)
    assert index.annotations["id"].tolist() == [1, *MALFORMED, 12]  # nothing skipped
    assert index.annotations["num_keypoints"].tolist() == [2] + [-1] * 11
    values = index.keypoints(np.arange(index.num_annotations))
    assert values.shape == (12, 9)
    assert values[0].tolist() == KEYPOINTS_OK
    assert np.isnan(values[1:]).all()
    null = index.annotations["id"].tolist().index(4)  # decoded with the good row in one go
    assert np.array_equal(index.keypoints(np.array([0, null])), values[[0, null]], equal_nan=True)
    assert index.categories == [{**person, **names}]


@pytest.mark.parametrize(
    ("names", "kept"),
    [
        ({"keypoints": ["a", "b"], "skeleton": [[1, 3]]}, {"keypoints": ["a", "b"]}),
        ({"keypoints": "a b", "skeleton": [[1, 2]]}, {}),
        ({"keypoints": ["a", "b"], "skeleton": [[1, 2, 3]]}, {"keypoints": ["a", "b"]}),
        ({"keypoints": None, "skeleton": None}, {}),
    ],
)
def test_a_bad_keypoint_category_keeps_the_category(tmp_path, names, kept):
    path = write_coco(
        tmp_path / "cat.json",
        [{"id": 1, "width": 64, "height": 64, "file_name": "a.jpg"}],
        [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]}],
        [{"id": 1, "name": "person", "supercategory": "person", **names}],
    )
    index = open_index(path)
    assert index.categories == [{"id": 1, "name": "person", "supercategory": "person", **kept}]
    assert index.num_annotations == 1
    reported = [f for f in index.health if f["check"] == "bad_category_keypoints"]
    assert len(reported) == (names != {"keypoints": None, "skeleton": None})
    assert all(f["severity"] == "warning" for f in reported)
