"""A detector's confident errors as suspected annotation mistakes: a confident detection where
nothing is annotated suggests a missing object, one of another class on an object a wrong
label; on real coco-tiny annotations with one object removed and one relabelled."""

from __future__ import annotations

import json

import numpy as np

from explorer.coco.index import open_index
from explorer.evaluation.cocoeval import evaluate
from explorer.evaluation.errors import analyse_errors
from explorer.evaluation.params import EvalParams
from explorer.inference.detector_mistakes import detector_suspects
from explorer.inference.mistakes import COLUMNS
from explorer.predictions.results import read_results
from tests.helpers import tiny


def test_removed_and_relabelled_objects_are_suspected(tmp_path):
    ann, _ = tiny("val2017")
    doc = json.loads(ann.read_text())
    crowded = {a["image_id"] for a in doc["annotations"] if a["iscrowd"]}  # a crowd absorbs dets
    objects = [a for a in doc["annotations"] if a["image_id"] not in crowded and a["area"] > 2000]
    removed, relabelled = objects[0], objects[5]
    other = next(c["id"] for c in doc["categories"] if c["id"] != relabelled["category_id"])
    truth_of_relabelled = relabelled["category_id"]
    # the detector is right everywhere (the original annotations, confident) ...
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": a["bbox"],
            "score": 0.9,
        }
        for a in doc["annotations"]
        if not a["iscrowd"]
    ]
    # ... and the file we check lost one object and mislabels another
    doc["annotations"] = [a for a in doc["annotations"] if a["id"] != removed["id"]]
    relabelled["category_id"] = other
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps(doc))
    dt.write_text(json.dumps(dets))
    index = open_index(gt)
    detections = read_results(dt, index, "bbox")
    evaluation = evaluate(index, detections, EvalParams.for_iou_type("bbox"))
    rows = detector_suspects(
        evaluation, analyse_errors(evaluation, index, detections), index, detections
    )
    assert all(set(r) == set(COLUMNS) for r in rows)
    missing = [r for r in rows if r["kind"] == "missing"]
    wrong = [r for r in rows if r["kind"] == "wrong_label"]
    assert [(r["image_id"], r["category_id"]) for r in missing] == [
        (removed["image_id"], removed["category_id"])
    ]
    assert np.allclose(missing[0]["bbox"], removed["bbox"])
    assert [(r["annotation_id"], r["category_id"], r["annotated_category_id"]) for r in wrong] == [
        (relabelled["id"], truth_of_relabelled, other)
    ]
    assert all(r["evidence"] == "detector dt.json" and r["detector_score"] == 0.9 for r in rows)


def test_unconfident_errors_are_not_suspects(tmp_path):
    ann, _ = tiny("val2017")
    doc = json.loads(ann.read_text())
    a = next(a for a in doc["annotations"] if not a["iscrowd"])
    dets = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": [0, 0, 5, 5],
            "score": 0.3,
        }
    ]
    dt = tmp_path / "dt.json"
    dt.write_text(json.dumps(dets))
    index = open_index(ann)
    detections = read_results(dt, index, "bbox")
    evaluation = evaluate(index, detections, EvalParams.for_iou_type("bbox"))
    analysis = analyse_errors(evaluation, index, detections)
    assert detector_suspects(evaluation, analysis, index, detections, min_score=0.5) == []
    assert len(detector_suspects(evaluation, analysis, index, detections, min_score=0.2)) == 1


def test_the_cli_writes_the_detectors_rows_alone(tmp_path):
    """``mistakes --predictions DT.json`` without models: the detector's rows, and one line when
    neither models nor predictions are given."""
    import pandas as pd

    from explorer.inference.mistakes import COLUMNS
    from tests.evaluation.test_cocoeval import made
    from tests.helpers import run_cli

    ann, _ = tiny("val2017")
    dt = made(ann, tmp_path / "dt.json", "bbox", seed=3)
    index = open_index(ann)
    detections = read_results(dt, index, "bbox")
    evaluation = evaluate(index, detections, EvalParams.for_iou_type("bbox"))
    analysis = analyse_errors(evaluation, index, detections)
    want = detector_suspects(evaluation, analysis, index, detections, min_score=0.6)
    out = tmp_path / "m.csv"
    r = run_cli(
        "mistakes", "--coco", str(ann), "--predictions", str(dt), "--min-detector-score", "0.6",
        "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    table = pd.read_csv(out)
    assert tuple(table.columns) == COLUMNS and len(table) == len(want) > 5
    assert table["kind"].tolist() == [w["kind"] for w in want]
    assert table["annotation_id"].tolist() == [w["annotation_id"] for w in want]
    assert (table["evidence"] == "detector dt.json").all() and (
        table["detector_score"] >= 0.6
    ).all()
    assert f"{len(want)} rows from the detector dt.json" in r.stdout
    some = sorted({w["image_id"] for w in want})[:2]
    r = run_cli(
        "mistakes", "--coco", str(ann), "--predictions", str(dt), "--image-ids", *map(str, some),
        "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0 and set(pd.read_csv(out)["image_id"]) == set(some)
    neither = run_cli("mistakes", "--coco", str(ann), "--out", str(out))
    assert neither.returncode == 2 and "--predictions" in neither.stderr
    assert len(neither.stderr.strip().splitlines()) == 1
