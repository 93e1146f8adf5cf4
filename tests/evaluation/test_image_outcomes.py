"""Outcomes at a score threshold, per image (what Browse draws, filters and sorts by), on
coco-tiny with results made by the acceptance generator: each image's FP and FN, the images
missing an object of a category, are pycocotools' (its evalImgs); one image's matches are
``detection_outcomes``'s rows of it; the images with a false positive of a cause are the error
analysis's."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.evaluation import report
from explorer.evaluation.errors import CAUSES, analyse_errors
from explorer.evaluation.image_outcomes import (
    image_matches,
    images_missing,
    images_with_cause,
    outcomes_at,
)
from tests.evaluation.test_cocoeval import made, oracle, ours
from tests.helpers import tiny


@pytest.fixture(scope="module", params=["bbox", "segm"])
def scored(request, tmp_path_factory):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path_factory.mktemp("dt") / "dt.json", request.param, seed=3)
    e, _ = oracle(gt, dt, request.param)
    index, detections, evaluation = ours(gt, dt, request.param)
    return e, index, detections, evaluation


def _pycocotools_errors(e, min_score: float) -> dict[tuple[int, int], tuple[int, int]]:
    """Per (image, category): false positives kept and objects missed at ``min_score``, from
    pycocotools' evalImgs (IoU 0.5, all areas, maxDets 100)."""
    out = {}
    for ev in e.evalImgs:
        if ev is None or ev["aRng"] != e.params.areaRng[0] or ev["maxDet"] != 100:
            continue
        scores = np.asarray(ev["dtScores"])
        kept = (scores >= min_score) & ~np.asarray(ev["dtIgnore"][0], bool)
        fp = int((kept & ~(np.asarray(ev["dtMatches"][0]) > 0)).sum())
        by_id = dict(zip(ev["dtIds"], scores.tolist(), strict=True))
        found = [m > 0 and by_id[m] >= min_score for m in ev["gtMatches"][0]]
        objects = ~np.asarray(ev["gtIgnore"], bool)
        out[(ev["image_id"], ev["category_id"])] = (
            fp,
            int((objects & ~np.array(found, bool)).sum()),
        )
    return out


@pytest.mark.parametrize("min_score", [0.0, 0.5, 0.9])
def test_each_images_errors_are_pycocotools(scored, min_score):
    e, _, _, evaluation = scored
    want = _pycocotools_errors(e, min_score)
    outcomes = outcomes_at(evaluation, min_score)
    ids = evaluation.layout.image_ids
    per_image: dict[int, list[int]] = {}
    for (image, _), (fp, fn) in want.items():
        row = per_image.setdefault(image, [0, 0])
        row[0], row[1] = row[0] + fp, row[1] + fn
    got = {
        int(i): [int(fp), int(fn)]
        for i, fp, fn in zip(ids, outcomes.false_positives, outcomes.false_negatives, strict=True)
    }
    assert {k: v for k, v in got.items() if any(v)} == {
        k: v for k, v in per_image.items() if any(v)
    }
    errors = outcomes.errors_of(np.array([*ids.tolist(), 10**12]))
    assert errors[:-1].tolist() == [sum(got[int(i)]) for i in ids] and errors[-1] == 0
    for category in (1, 62, 67):  # person, chair, dining table
        missing = {image for (image, c), (_, fn) in want.items() if c == category and fn}
        assert images_missing(outcomes, category).tolist() == sorted(missing)
        assert missing or category != 1


def test_images_with_a_cause_follow_the_error_analysis(scored):
    _, index, detections, evaluation = scored
    analysis = analyse_errors(evaluation, index, detections)
    outcomes = outcomes_at(evaluation, 0.5)
    table = report.detection_outcomes(evaluation, index, detections)
    seen = 0
    for k, cause in enumerate(CAUSES):
        chosen = (table["score"] >= 0.5) & (analysis.cause == k)
        want = sorted(set(table["image_id"][chosen].tolist()))
        assert images_with_cause(outcomes, analysis, cause).tolist() == want
        seen += bool(want)
    assert seen >= 2  # the generator makes several kinds of errors


def test_one_images_matches_are_the_detection_outcomes_of_it(scored):
    _, index, detections, evaluation = scored
    table = report.detection_outcomes(evaluation, index, detections)
    truth = report.ground_truth_outcomes(evaluation, index)
    analysis = analyse_errors(evaluation, index, detections)
    outcomes = outcomes_at(evaluation, 0.5)
    image = int(np.bincount(table["image_id"][table["score"] >= 0.5]).argmax())  # the busiest
    found = image_matches(outcomes, index, detections, image, analysis)
    mine = np.flatnonzero((table["image_id"] == image) & (table["score"] >= 0.5))
    mine = mine[np.argsort(-table["score"][mine], kind="stable")]
    assert len(found) == len(mine) > 5
    assert found.result_row.tolist() == table["result_row"][mine].tolist()
    assert found.outcome.tolist() == table["outcome"][mine].tolist()
    assert found.annotation_id.tolist() == table["annotation_id"][mine].tolist()
    assert np.allclose(found.iou, table["iou"][mine])
    wrong = found.outcome == "FP"
    assert set(found.cause[wrong]) <= set(CAUSES) and not any(found.cause[~wrong])
    assert found.dropped == int(((table["image_id"] == image) & (table["score"] < 0.5)).sum())
    # missed: an object no kept detection found (ground truth outcomes at every score, then the
    # threshold applied to the detection that found it)
    on = truth["image_id"] == image
    score_of = dict(zip(table["result_row"].tolist(), table["score"].tolist(), strict=True))
    lost = [
        int(a)
        for a, o, r in zip(
            truth["annotation_id"][on], truth["outcome"][on], truth["result_row"][on], strict=True
        )
        if o == "FN" or (o == "TP" and score_of[int(r)] < 0.5)
    ]
    assert sorted(index.annotations["id"][found.missed_rows].tolist()) == sorted(lost)
    assert found.counts()["FN"] == len(lost)


def test_an_image_the_evaluation_does_not_hold_has_no_matches(scored):
    _, index, detections, evaluation = scored
    found = image_matches(outcomes_at(evaluation, 0.5), index, detections, 10**12)
    assert len(found) == 0 and len(found.object_rows) == 0 and found.dropped == 0
