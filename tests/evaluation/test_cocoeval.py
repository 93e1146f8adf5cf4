"""The evaluation equals pycocotools' COCOeval: the 12 (10) summary numbers, the precision,
recall and scores arrays and the printed lines, bit for bit, on predictions of every kind made
from real COCO data, under custom parameters, and on hand-made inputs built around each of
COCOeval's traps (../shared/notes/evaluation.md §9)."""

from __future__ import annotations

import contextlib
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from explorer.coco.index import open_index
from explorer.evaluation.cocoeval import evaluate
from explorer.evaluation.params import EvalParams
from explorer.evaluation.report import detection_outcomes, ground_truth_outcomes
from explorer.predictions.results import read_results
from tests.helpers import ROOT, tiny

MAKE_PREDICTIONS = ROOT.parent / "shared" / "acceptance" / "make_predictions.py"
COCO_MINI = ROOT.parent / "shared" / "coco-mini" / "annotations"


def oracle(gt: Path, dt: Path, kind: str, **params):
    """pycocotools' COCOeval after evaluate, accumulate and summarize, and what it printed."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()) as out:
        g = COCO(str(gt))
        e = COCOeval(g, g.loadRes(str(dt)), kind)
        for name, value in params.items():
            setattr(e.params, name, value)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return e, [line for line in out.getvalue().splitlines() if line.startswith(" Average")]


def ours(gt: Path, dt: Path, kind: str, **params):
    index = open_index(gt)
    detections = read_results(dt, index, kind)
    return index, detections, evaluate(index, detections, EvalParams.for_iou_type(kind, **params))


def assert_equal(gt: Path, dt: Path, kind: str, theirs: dict | None = None, **params):
    """Every number of ours == pycocotools' (``theirs``: its Params names, when they differ)."""
    e, lines = oracle(gt, dt, kind, **(theirs if theirs is not None else params))
    _, _, evaluation = ours(gt, dt, kind, **params)
    for name in ("precision", "recall", "scores"):
        assert np.array_equal(getattr(evaluation, name), e.eval[name]), name
    assert evaluation.stats.tolist() == list(e.stats)
    assert [row.line for row in evaluation.summary()] == lines
    return evaluation


def made(gt: Path, out: Path, kind: str, seed: int = 3, scale: int = 1) -> Path:
    if not MAKE_PREDICTIONS.is_file():
        pytest.skip(f"the predictions generator is not at {MAKE_PREDICTIONS}")
    subprocess.run(
        [sys.executable, str(MAKE_PREDICTIONS), str(gt), str(out), "--kind", kind,
         "--seed", str(seed), "--scale", str(scale)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return out


def mini(name: str) -> Path:
    path = COCO_MINI / name
    if not path.is_file():
        pytest.skip(f"coco-mini's {name} is not at {path}")
    return path


@pytest.mark.parametrize("kind", ["bbox", "segm"])
@pytest.mark.parametrize("seed", [3, 11])
def test_made_predictions_on_coco_tiny_equal_pycocotools(tmp_path, kind, seed):
    gt, _ = tiny("val2017")
    assert_equal(gt, made(gt, tmp_path / "dt.json", kind, seed), kind)


def test_dense_predictions_on_coco_mini_equal_pycocotools(tmp_path):
    gt = mini("instances_train2017.json")
    evaluation = assert_equal(gt, made(gt, tmp_path / "dt.json", "bbox", 5, scale=4), "bbox")
    assert evaluation.layout.rank.max() > 20  # many detections per image and category


def test_keypoints_on_coco_mini_equal_pycocotools(tmp_path):
    gt = mini("person_keypoints_train2017.json")
    assert_equal(gt, made(gt, tmp_path / "dt.json", "keypoints", 3), "keypoints")


def test_custom_parameters_equal_pycocotools(tmp_path):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", 7)
    ids = sorted({r["image_id"] for r in json.loads(dt.read_text())})[::3]
    cats = [1, 3, 62, 64, 72]
    assert_equal(gt, dt, "bbox", image_ids=ids, theirs={"imgIds": ids})
    assert_equal(gt, dt, "bbox", category_ids=cats, theirs={"catIds": cats})
    thresholds = np.array([0.3, 0.5, 0.75])
    assert_equal(gt, dt, "bbox", iou_thresholds=thresholds, theirs={"iouThrs": thresholds})
    # no 100 among maxDets: pycocotools' first number is -1 (it hard-codes maxDets=100)
    evaluation = assert_equal(gt, dt, "bbox", max_dets=(1, 5, 300), theirs={"maxDets": [1, 5, 300]})
    assert evaluation.stats[0] == -1


def _traps(tmp_path: Path) -> tuple[Path, Path]:
    """A hand-made file around COCOeval's traps: an annotation with id 0, a crowd that absorbs
    several detections, score ties across images, an area of exactly 32², a category with
    detections but no ground truth, an image with detections and no ground truth, equal IoUs."""
    images = [{"id": i, "width": 200, "height": 200, "file_name": f"{i}.jpg"} for i in (1, 2, 3)]
    rows = [  # id, image, category, box, area, crowd
        (0, 1, 1, [10, 10, 50, 50], 2500, 0),
        (5, 1, 1, [100, 100, 32, 32], 1024, 0),
        (6, 1, 1, [0, 120, 90, 70], 6300, 1),
        (7, 2, 1, [20, 20, 40, 40], 1600, 0),
        (8, 2, 1, [20, 20, 40, 40], 1600, 0),
        (9, 2, 3, [60, 60, 80, 80], 6400, 0),
    ]
    keys = ("id", "image_id", "category_id", "bbox", "area", "iscrowd")
    anns = [dict(zip(keys, row, strict=True)) for row in rows]
    cats = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 5, "name": "bus"}]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 50], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [100, 100, 32, 32], "score": 0.5},
        {"image_id": 1, "category_id": 1, "bbox": [5, 130, 40, 40], "score": 0.8},
        {"image_id": 1, "category_id": 1, "bbox": [40, 140, 40, 40], "score": 0.7},
        {"image_id": 2, "category_id": 1, "bbox": [20, 20, 40, 40], "score": 0.5},
        {"image_id": 2, "category_id": 1, "bbox": [22, 22, 40, 40], "score": 0.5},
        {"image_id": 2, "category_id": 3, "bbox": [70, 70, 80, 80], "score": 0.6},
        {"image_id": 2, "category_id": 5, "bbox": [0, 0, 10, 10], "score": 0.95},
        {"image_id": 3, "category_id": 1, "bbox": [0, 0, 30, 30], "score": 0.5},
    ]
    dt = tmp_path / "dt.json"
    dt.write_text(json.dumps(dets))
    return gt, dt


def test_traps_equal_pycocotools(tmp_path):
    gt, dt = _traps(tmp_path)
    evaluation = assert_equal(gt, dt, "bbox")
    # the perfect detection of annotation 0 is a false positive, as in pycocotools
    index, detections, _ = ours(gt, dt, "bbox")
    outcomes = detection_outcomes(evaluation, index, detections)
    assert outcomes["outcome"][outcomes["result_row"] == 0].tolist() == ["FP"]


def _random_case(rnd: random.Random, tmp_path: Path) -> tuple[Path, Path]:
    """Boxes on a coarse grid (equal IoUs and areas at range bounds happen), crowds, coarse
    scores (ties), detections cut by maxDets."""
    images = [{"id": i, "width": 64, "height": 64, "file_name": f"{i}.jpg"} for i in range(1, 6)]
    cats = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]

    def box():
        x, y = rnd.randrange(0, 48, 4), rnd.randrange(0, 48, 4)
        return [x, y, rnd.choice([4, 8, 16, 32]), rnd.choice([4, 8, 16, 32])]

    anns = []
    for i in range(rnd.randrange(0, 30)):
        b = box()
        image, category, crowd = rnd.randrange(1, 6), rnd.choice([1, 2]), rnd.random() < 0.15
        anns.append(
            {"id": i + 1, "image_id": image, "category_id": category, "bbox": b,
             "area": float(b[2] * b[3]), "iscrowd": int(crowd)}
        )  # fmt: skip
    dets = [
        {
            "image_id": rnd.randrange(1, 6),
            "category_id": rnd.choice([1, 2, 3]),
            "bbox": box(),
            "score": rnd.choice([0.1, 0.5, 0.5, 0.9, rnd.random()]),
        }
        for _ in range(rnd.randrange(1, 60))
    ]
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dt.write_text(json.dumps(dets))
    return gt, dt


@pytest.mark.parametrize("seed", range(12))
def test_random_cases_equal_pycocotools(tmp_path, seed):
    gt, dt = _random_case(random.Random(seed), tmp_path)
    assert_equal(gt, dt, "bbox", max_dets=(1, 3, 100), theirs={"maxDets": [1, 3, 100]})


def test_outcomes_are_pycocotools_matches(tmp_path):
    """Per object at IoU .5, all areas: the matched annotation of each detection and the
    matched detection of each annotation are pycocotools' dtMatches / gtMatches."""
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", 3)
    e, _ = oracle(gt, dt, "bbox")
    index, detections, evaluation = ours(gt, dt, "bbox")
    dt_out = detection_outcomes(evaluation, index, detections)
    gt_out = ground_truth_outcomes(evaluation, index)
    theirs_dt, theirs_gt = {}, {}
    for img in (x for x in e.evalImgs if x is not None and x["aRng"] == [0, 1e10]):
        matches = zip(img["dtIds"], img["dtMatches"][0], img["dtIgnore"][0], strict=True)
        for did, gid, ignored in matches:
            outcome = "ignored" if ignored else "TP" if gid else "FP"
            theirs_dt[did - 1] = (outcome, int(gid) or -1)
        for gid, did in zip(img["gtIds"], img["gtMatches"][0], strict=True):
            theirs_gt[gid] = int(did) - 1 if did else -1
    mine_dt = {
        row: (outcome, ann)
        for row, outcome, ann in zip(
            dt_out["result_row"].tolist(),
            dt_out["outcome"].tolist(),
            dt_out["annotation_id"].tolist(),
            strict=True,
        )
    }
    assert mine_dt == theirs_dt
    mine_gt = dict(
        zip(gt_out["annotation_id"].tolist(), gt_out["result_row"].tolist(), strict=True)
    )
    assert mine_gt == theirs_gt
    found = dt_out["outcome"] == "TP"
    assert (dt_out["iou"][found] >= 0.5).all()
    assert (dt_out["iou"][dt_out["annotation_id"] < 0] == -1).all()


@pytest.mark.parametrize("kind", ["bbox", "segm"])
def test_overlaps_computed_in_small_chunks_equal_pycocotools(tmp_path, monkeypatch, kind):
    """The overlaps are computed a chunk of whole buckets at a time (memory); chunks of a few
    pairs and masks give the same numbers as one."""
    from explorer.evaluation import layout

    monkeypatch.setattr(layout, "CHUNK_PAIRS", 50)
    monkeypatch.setattr(layout, "CHUNK_MEMBERS", 7)
    gt, _ = tiny("val2017")
    assert_equal(gt, made(gt, tmp_path / "dt.json", kind, 5), kind)
