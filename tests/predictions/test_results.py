"""COCO results files read as pycocotools' ``COCO.loadRes`` leaves them: the same records, and in
each the same ids, score, bbox and area (exactly) and the same RLE; bad records skipped and
counted by reason, never fatal; files that are not results refused in one line."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from explorer.coco import open_index
from explorer.coco.segmentations import string_counts
from explorer.errors import PredictionsError
from explorer.predictions import _geometry, _records
from explorer.predictions import results as results_module
from explorer.predictions.results import detections_from_records, read_results
from tests.helpers import ROOT, pycoco, tiny, write_coco

SHARED = ROOT.parent / "shared"
MAKE_PREDICTIONS = SHARED / "acceptance" / "make_predictions.py"
KEYPOINTS_GT = SHARED / "coco-mini" / "annotations" / "person_keypoints_train2017.json"


def _made(gt: Path, out: Path, kind: str) -> Path:
    """A results file made from the truth by the acceptance generator (seeded)."""
    if not MAKE_PREDICTIONS.is_file():
        pytest.skip(f"the results generator is not at {MAKE_PREDICTIONS} (shared/acceptance)")
    cmd = [sys.executable, str(MAKE_PREDICTIONS), str(gt), str(out), "--kind", kind, "--seed", "5"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """(ground truth, results file) of each kind: coco-tiny's instances for bbox and segm,
    coco-mini's person keypoints for keypoints."""
    if not KEYPOINTS_GT.is_file():
        pytest.skip(f"coco-mini's person keypoints not found at {KEYPOINTS_GT}")
    gt = tiny()[0]
    folder = tmp_path_factory.mktemp("results")
    return {
        "bbox": (gt, _made(gt, folder / "bbox.json", "bbox")),
        "segm": (gt, _made(gt, folder / "segm.json", "segm")),
        "keypoints": (KEYPOINTS_GT, _made(KEYPOINTS_GT, folder / "keypoints.json", "keypoints")),
    }


def _load_res(gt: Path, results: Path) -> list[dict]:
    """pycocotools' records of a results file, in file order (loadRes numbers them 1..n)."""
    coco = pycoco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        loaded = coco.loadRes(str(results))
    return [loaded.anns[i] for i in sorted(loaded.anns)]


def _assert_as_pycocotools(det, anns: list[dict]) -> None:
    assert len(det) == len(anns)
    assert det.image_id.tolist() == [a["image_id"] for a in anns]
    assert det.category_id.tolist() == [a["category_id"] for a in anns]
    assert det.score.tolist() == [a["score"] for a in anns]
    assert det.bbox.dtype == np.float64 and det.area.dtype == np.float64
    assert det.bbox.tolist() == [[float(v) for v in a["bbox"]] for a in anns]
    assert det.area.tolist() == [float(a["area"]) for a in anns]
    if det.kind == "segm":
        got = [det.rles.rle(i) for i in range(len(det))]
        want = [a["segmentation"] for a in anns]
        assert [g["counts"] for g in got] == [w["counts"].encode() for w in want]
        assert [g["size"] for g in got] == [w["size"] for w in want]
    if det.kind == "keypoints":
        assert det.keypoints.tolist() == [a["keypoints"] for a in anns]


def _assert_same(det, clean) -> None:
    for name in ("image_id", "category_id", "score", "bbox", "area"):
        assert np.array_equal(getattr(det, name), getattr(clean, name)), name
    if clean.rles is not None:
        assert det.rles.counts == clean.rles.counts
        assert np.array_equal(det.rles.offsets, clean.rles.offsets)
    if clean.keypoints is not None:
        assert np.array_equal(det.keypoints, clean.keypoints)


@pytest.mark.parametrize("kind", ["bbox", "segm", "keypoints"])
def test_a_results_file_reads_as_load_res_leaves_it(cases, kind):
    gt, results = cases[kind]
    index = open_index(gt)
    det = read_results(results, index, kind)
    assert det.kind == kind and det.path == results and det.skipped == {}
    _assert_as_pycocotools(det, _load_res(gt, results))
    guessed = read_results(results, index)
    assert guessed.kind == kind
    _assert_same(guessed, det)


@pytest.mark.parametrize("kind", ["segm", "keypoints"])
def test_results_with_boxes_take_the_box_area_as_load_res_does(cases, kind, tmp_path):
    """detectron2 and mmdet write a box with each mask or keypoints: loadRes' first record has
    a bbox, so every area is the box's, also in segm and keypoints evaluation."""
    gt, results = cases[kind]
    records = json.loads(results.read_text())
    rnd = random.Random(3)
    for r in records:
        r["bbox"] = [round(rnd.uniform(0, 300), 2) for _ in range(4)]
    both = tmp_path / "both.json"
    both.write_text(json.dumps(records))
    det = read_results(both, open_index(gt), kind)
    _assert_as_pycocotools(det, _load_res(gt, both))
    assert det.area.tolist() == (det.bbox[:, 2] * det.bbox[:, 3]).tolist()


def test_a_zero_size_box_is_a_detection(cases, tmp_path):
    gt, results = cases["bbox"]
    records = json.loads(results.read_text())
    records.append({**records[0], "bbox": [10, 10, 0, 0]})
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(records))
    det = read_results(path, open_index(gt), "bbox")
    _assert_as_pycocotools(det, _load_res(gt, path))
    assert det.area[-1] == 0 and det.skipped == {}


def _with_bad(results: Path, out: Path, bad: list) -> Path:
    """The records of ``results`` with ``bad`` records around them, as Python's json writes
    them (NaN included)."""
    records = json.loads(results.read_text())
    half = len(bad) // 2
    out.write_text(json.dumps(bad[:half] + records + bad[half:]))
    return out


def _bad_box_records(good: dict) -> list[tuple[object, str]]:
    return [
        (7, _records.NOT_AN_OBJECT),
        ([good], _records.NOT_AN_OBJECT),
        ({**good, "image_id": 10**9}, _records.UNKNOWN_IMAGE),
        ({k: v for k, v in good.items() if k != "image_id"}, _records.UNKNOWN_IMAGE),
        ({**good, "image_id": 1.5}, _records.UNKNOWN_IMAGE),
        ({**good, "image_id": 2**70}, _records.UNKNOWN_IMAGE),
        ({**good, "category_id": 100000}, _records.UNKNOWN_CATEGORY),
        ({k: v for k, v in good.items() if k != "score"}, _records.BAD_SCORE),
        ({**good, "score": "high"}, _records.BAD_SCORE),
        ({**good, "score": math.nan}, _records.BAD_SCORE),
        ({**good, "score": None}, _records.BAD_SCORE),
        ({**good, "bbox": "oops"}, _records.BAD_BOX),
        ({**good, "bbox": [1, 2, 3]}, _records.BAD_BOX),
        ({**good, "bbox": [1, 2, math.inf, 3]}, _records.BAD_BOX),
        ({**good, "bbox": [1, 2, -3, 4]}, _records.NEGATIVE_BOX),
        ({k: v for k, v in good.items() if k != "bbox"}, _records.NO_BOX_OR_MASK),
        ({**good, "bbox": []}, _records.NO_BOX_OR_MASK),
    ]


def _bad_segm_records(good: dict) -> list[tuple[object, str]]:
    rle = good["segmentation"]
    h, w = rle["size"]
    return [
        ({**good, "image_id": 10**9}, _records.UNKNOWN_IMAGE),
        ({**good, "score": math.inf}, _records.BAD_SCORE),
        ({k: v for k, v in good.items() if k != "segmentation"}, _records.NO_SEGMENTATION),
        ({**good, "segmentation": None}, _records.NO_SEGMENTATION),
        ({**good, "segmentation": 5}, _records.BAD_SEGMENTATION),
        ({**good, "segmentation": {**rle, "size": [h + 1, w]}}, _records.RLE_SIZE),
        ({**good, "segmentation": {**rle, "counts": "!!!"}}, _records.BAD_RLE),
        ({**good, "segmentation": {**rle, "counts": rle["counts"] + "1"}}, _records.BAD_RLE),
        ({**good, "segmentation": {**rle, "counts": rle["counts"][:-1] + "o"}}, _records.BAD_RLE),
        ({**good, "segmentation": {**rle, "counts": [h * w - 1]}}, _records.BAD_RLE),
        ({**good, "segmentation": {**rle, "counts": [-1, h * w + 1]}}, _records.BAD_RLE),
        ({**good, "segmentation": {"counts": rle["counts"]}}, _records.BAD_RLE),
        ({**good, "segmentation": [[1, 2, 3, 4]]}, _records.BAD_POLYGON),
        ({**good, "segmentation": [[1, 2, 3, "x", 5, 6]]}, _records.BAD_POLYGON),
        ({**good, "segmentation": [[1e9, 2, 3, 4, 5, 6]]}, _records.BAD_POLYGON),
    ]


def _bad_keypoint_records(good: dict) -> list[tuple[object, str]]:
    points = good["keypoints"]
    return [
        ("a string", _records.NOT_AN_OBJECT),
        ({**good, "category_id": 2}, _records.UNKNOWN_CATEGORY),
        ({k: v for k, v in good.items() if k != "keypoints"}, _records.NO_KEYPOINTS),
        ({**good, "keypoints": points[:-1]}, _records.BAD_KEYPOINTS),
        ({**good, "keypoints": points[:-3]}, _records.BAD_KEYPOINTS),
        ({**good, "keypoints": points + [1, 2, 1]}, _records.BAD_KEYPOINTS),
        ({**good, "keypoints": [math.nan, *points[1:]]}, _records.BAD_KEYPOINTS),
        ({**good, "keypoints": []}, _records.BAD_KEYPOINTS),
    ]


BAD_RECORDS = {
    "bbox": _bad_box_records,
    "segm": _bad_segm_records,
    "keypoints": _bad_keypoint_records,
}


@pytest.mark.parametrize("kind", ["bbox", "segm", "keypoints"])
def test_each_bad_record_is_skipped_and_counted_by_its_reason(cases, kind, tmp_path):
    gt, results = cases[kind]
    index = open_index(gt)
    clean = read_results(results, index, kind)
    good = json.loads(results.read_text())[0]
    bad = BAD_RECORDS[kind](good)
    det = read_results(_with_bad(results, tmp_path / "bad.json", [r for r, _ in bad]), index, kind)
    want: dict[str, int] = {}
    for _, reason in bad:
        want[reason] = want.get(reason, 0) + 1
    assert det.skipped == want and det.num_skipped == len(bad)
    _assert_same(det, clean)


def test_spans_cut_small_read_the_same(cases, tmp_path, monkeypatch):
    """Many spans, bad records inside them, and a record the byte search would cut wrongly (a
    string holding ``}, {``): the same columns as one span."""
    gt, results = cases["segm"]
    index = open_index(gt)
    clean = read_results(results, index, "segm")
    records = json.loads(results.read_text())
    bad = [r for r, _ in _bad_segm_records(records[0])]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(records[:100] + bad + records[100:]))
    monkeypatch.setattr(_records, "SPAN_BYTES", 4096)
    det = read_results(path, index, "segm")
    _assert_same(det, clean)
    assert det.num_skipped == len(bad)
    for r in records[::5]:
        r["note"] = '"}, {"a": 1'
    path.write_text(json.dumps(records[:100] + bad + records[100:]))
    whole = []
    monkeypatch.setattr(
        results_module, "whole_file_chunks", _spy(whole, _records.whole_file_chunks)
    )
    det = read_results(path, index, "segm")
    assert whole, "the byte search did not meet the string that looks like a boundary"
    _assert_same(det, clean)
    assert det.num_skipped == len(bad)


def _spy(calls: list, fn):
    def spied(*args):
        calls.append(args)
        return fn(*args)

    return spied


def test_rle_counts_are_checked_as_pycocotools_decodes_them(cases):
    """The compiled check agrees with the project's rendering of ``rleFrString``
    (``coco.segmentations.string_counts``) on real counts damaged every way: characters out of
    the alphabet, dropped, inserted, cut inside a number."""
    records = json.loads(cases["segm"][1].read_text())
    rles = [r["segmentation"] for r in records]
    rnd = random.Random(7)
    texts, areas = [], []
    for _ in range(2000):
        rle = rnd.choice(rles)
        text = bytearray(rle["counts"].encode())
        i = rnd.randrange(len(text))
        edit = rnd.choice(["replace", "drop", "insert", "cut"])
        if edit == "replace":
            text[i] = rnd.randrange(40, 120)
        elif edit == "drop":
            del text[i]
        elif edit == "insert":
            text.insert(i, rnd.randrange(48, 112))
        else:
            text = text[:i]
        texts.append(bytes(text))
        areas.append(rle["size"][0] * rle["size"][1])
    texts += [r["counts"].encode() for r in rles[:50]]
    areas += [r["size"][0] * r["size"][1] for r in rles[:50]]
    got = _geometry.compressed_counts_ok(texts, np.array(areas))
    want = []
    for text, area in zip(texts, areas, strict=True):
        runs = string_counts(text.decode("latin-1"))
        want.append(bool(text) and runs is not None and min(runs) >= 0 and sum(runs) == area)
    assert got.tolist() == want
    assert 50 <= sum(want) < len(want)


def test_a_bbox_file_needs_no_compiled_code(cases):
    """numba is imported only for masks to check: a bbox file is read without it."""
    gt, results = cases["bbox"]
    code = (
        "import sys\n"
        "from explorer.coco import open_index\n"
        "from explorer.predictions.results import read_results\n"
        f"det = read_results({str(results)!r}, open_index({str(gt)!r}), 'bbox')\n"
        "print(len(det), 'numba' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.stdout.split()[1:] == ["False"], done.stdout + done.stderr


def test_records_in_memory_read_as_the_file(cases):
    gt, results = cases["segm"]
    index = open_index(gt)
    records = json.loads(results.read_text())
    # as a model writes them: numpy numbers, bytes counts
    for r in records[:50]:
        r["score"] = np.float64(r["score"])
        r["image_id"] = np.int64(r["image_id"])
        r["segmentation"]["counts"] = r["segmentation"]["counts"].encode()
    det = detections_from_records(records, index, "segm")
    _assert_same(det, read_results(results, index, "segm"))
    assert det.path is None


def test_string_ids_uncompressed_rles_and_polygons(tmp_path):
    """Ids written as strings match the index's reading of the truth; an uncompressed RLE is
    compressed and polygons rasterised at the image's size, as pycocotools' annToRLE does."""
    h, w = 30, 40
    images = [{"id": "img-a", "width": w, "height": h}, {"id": "7", "width": w, "height": h}]
    gt = write_coco(tmp_path / "gt.json", images, [])
    index = open_index(gt, use_cache=False)
    polygon = [[2.5, 3, 20, 3, 20, 25.5, 2.5, 25.5], [25, 5, 35, 5, 30, 15]]
    mask = np.zeros((h, w), np.uint8, order="F")
    mask[4:9, 6:30] = 1
    runs = _runs(mask)
    records = [
        {"image_id": "img-a", "category_id": 1, "score": 0.9, "segmentation": polygon},
        {"image_id": "7", "category_id": "3", "score": 0.8, "segmentation": runs},
        {"image_id": 7, "category_id": 90, "score": 0.7, "segmentation": runs},
        {"image_id": "img-b", "category_id": 1, "score": 0.7, "segmentation": runs},
    ]
    det = detections_from_records(records, index, "segm")
    want_polygon = mask_utils.merge(mask_utils.frPyObjects(polygon, h, w))
    want_runs = mask_utils.encode(mask)
    assert det.rles.rles(np.arange(3)) == [want_polygon, want_runs, want_runs]
    assert det.image_id.tolist() == [index.images["id"][0], 7, 7]
    assert index.image_label(int(det.image_id[0])) == "img-a"
    assert det.category_id.tolist() == [1, 3, 90]
    assert det.area.tolist() == mask_utils.area([want_polygon, want_runs, want_runs]).tolist()
    assert det.bbox.tolist() == mask_utils.toBbox([want_polygon, want_runs, want_runs]).tolist()
    assert det.skipped == {_records.UNKNOWN_IMAGE: 1}


def _runs(mask: np.ndarray) -> dict:
    """The uncompressed RLE of a mask (column-major run lengths, from a run of zeros)."""
    flat = mask.ravel(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def test_an_empty_list_is_no_records(tmp_path):
    gt = write_coco(tmp_path / "gt.json", [{"id": 1, "width": 4, "height": 4}], [])
    path = tmp_path / "empty.json"
    path.write_text(" [ ]\n")
    det = read_results(path, open_index(gt, use_cache=False), "bbox")
    assert len(det) == 0 and det.bbox.shape == (0, 4) and det.skipped == {}
    det = read_results(path, open_index(gt, use_cache=False), "segm")
    assert len(det) == 0 and len(det.rles) == 0


@pytest.mark.parametrize(
    "content, says",
    [
        (None, "file not found"),
        (b"", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not valid JSON"),
        (b'[{"image_id": 1, "score": 0.5', "not valid JSON"),
        (b'{"images": [], "annotations": [], "categories": []}', "--coco"),
        (b'{"detections": []}', "not a list of detections"),
        (b"42", "not a list of detections"),
    ],
)
def test_a_file_that_is_not_results_is_refused_in_one_line(tmp_path, content, says):
    gt = write_coco(tmp_path / "gt.json", [{"id": 1, "width": 4, "height": 4}], [])
    path = tmp_path / "results.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PredictionsError) as e:
        read_results(path, open_index(gt, use_cache=False))
    message = str(e.value)
    assert message.startswith(f"{path}: ") and says in message and "\n" not in message
