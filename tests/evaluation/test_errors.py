"""Error causes (TIDE's scheme on COCO's matching), what each costs, the confusion matrix, the
counts at a score threshold and the F1-best thresholds: on hand-made cases whose answer is
known, and consistency with pycocotools' matches on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from explorer.coco.index import open_index
from explorer.evaluation.cocoeval import evaluate
from explorer.evaluation.errors import CAUSES, TRUE_POSITIVE, analyse_errors, confusion
from explorer.evaluation.params import EvalParams
from explorer.evaluation.report import counts_at, f1_best
from explorer.predictions.results import read_results
from tests.evaluation.test_cocoeval import made, oracle
from tests.helpers import tiny


def _case(tmp_path: Path, dets: list[dict]):
    images = [{"id": i, "width": 300, "height": 300, "file_name": f"{i}.jpg"} for i in (1, 2)]
    anns = [
        {"id": i, "image_id": 1, "category_id": i, "bbox": box, "area": 1e4, "iscrowd": 0}
        for i, box in ((1, [0, 0, 100, 100]), (2, [150, 150, 100, 100]))
    ]
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    dt.write_text(json.dumps(dets))
    index = open_index(gt)
    detections = read_results(dt, index, "bbox")
    evaluation = evaluate(index, detections, EvalParams.for_iou_type("bbox"))
    return index, detections, evaluation


def det(image: int, category: int, box: list[float], score: float) -> dict:
    return {"image_id": image, "category_id": category, "bbox": box, "score": score}


def test_each_false_positive_gets_its_cause(tmp_path):
    dets = [
        det(1, 1, [0, 0, 100, 100], 0.9),  # TP
        det(1, 1, [2, 2, 100, 100], 0.8),  # duplicate of the cat
        det(1, 1, [150, 150, 100, 100], 0.7),  # a dog called cat: classification
        det(1, 2, [150, 150, 40, 40], 0.6),  # the dog, badly boxed (IoU 0.16): localisation
        det(1, 2, [0, 0, 40, 40], 0.5),  # a poor box on the cat, called dog: both
        det(1, 1, [280, 0, 15, 15], 0.4),  # nothing there: background
        det(2, 1, [0, 0, 50, 50], 0.3),  # an image without objects: background
    ]
    index, detections, evaluation = _case(tmp_path, dets)
    analysis = analyse_errors(evaluation, index, detections)
    by_row = dict(zip(evaluation.layout.dt_rows.tolist(), analysis.cause.tolist(), strict=True))
    named = [by_row[i] if by_row[i] == TRUE_POSITIVE else CAUSES[by_row[i]] for i in range(7)]
    assert named == [
        TRUE_POSITIVE, "duplicate", "classification", "localisation", "both", "background",
        "background",
    ]  # fmt: skip
    # the dog is explained by the classification and the localisation error: not missed
    assert analysis.counts()["missed"] == 0
    # fixing the classification error finds the dog: AP@0.5 becomes 1 for both classes...
    assert analysis.delta_ap["classification"] > 0
    assert np.isclose(analysis.ap50 + analysis.delta_ap["classification"], 1.0, atol=0.02)
    # ...and the AP it starts from is the summary's AP@0.5
    assert analysis.ap50 == evaluation.stats[1]


def test_confusion_matrix_counts_every_object_and_detection_once(tmp_path):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", 3)
    index = open_index(gt)
    detections = read_results(dt, index, "bbox")
    evaluation = evaluate(index, detections, EvalParams.for_iou_type("bbox"))
    analysis = analyse_errors(evaluation, index, detections)
    lay = evaluation.layout
    n_cat = len(lay.category_ids)
    objects = ~evaluation.gt_ignored[0]
    for min_score in (0.0, 0.5, 0.9):
        matrix = confusion(evaluation, analysis, min_score).matrix
        kept = (lay.dt_score >= min_score) & (evaluation.state[0, 0] != 2)
        # each object is in its class's row once; each kept detection in its class's column once
        assert (
            matrix[:n_cat].sum(axis=1).tolist()
            == np.bincount(lay.gt_category[objects], minlength=n_cat).tolist()
        )
        assert (
            matrix[:, :n_cat].sum(axis=0).tolist()
            == np.bincount(lay.dt_category[kept], minlength=n_cat).tolist()
        )
        counts = counts_at(evaluation, min_score)
        assert np.diag(matrix)[:n_cat].tolist() == counts["true_positives"].tolist()


def test_counts_at_zero_are_pycocotools_matches(tmp_path):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", 11)
    e, _ = oracle(gt, dt, "bbox")
    index = open_index(gt)
    evaluation = evaluate(index, read_results(dt, index, "bbox"), EvalParams.for_iou_type("bbox"))
    tp = fp = 0
    for img in (x for x in e.evalImgs if x is not None and x["aRng"] == [0, 1e10]):
        matched, ignored = img["dtMatches"][0] > 0, img["dtIgnore"][0]
        tp += int((matched & ~ignored).sum())
        fp += int((~matched & ~ignored).sum())
    counts = counts_at(evaluation, 0.0)
    assert (int(counts["true_positives"].sum()), int(counts["false_positives"].sum())) == (tp, fp)
    high = counts_at(evaluation, 0.8)
    assert (high["true_positives"] <= counts["true_positives"]).all()
    assert (high["false_negatives"] >= counts["false_negatives"]).all()


def test_f1_best_threshold_is_a_detection_score(tmp_path):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", 3)
    index = open_index(gt)
    detections = read_results(dt, index, "bbox")
    evaluation = evaluate(index, detections, EvalParams.for_iou_type("bbox"))
    best = f1_best(evaluation)
    found = ~np.isnan(best["score"])
    assert found.sum() > 10
    assert np.isin(best["score"][found], detections.score).all()
    assert ((best["f1"][found] > 0) & (best["f1"][found] <= 1)).all()
