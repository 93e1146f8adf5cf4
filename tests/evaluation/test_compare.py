"""What the Evaluate page reads from an evaluation beyond the summary: per-image counts at a score
threshold and the mean PR curve (against pycocotools' own matches and precision array), the
confusion matrix's busiest categories and a cell's images, and two files side by side."""

from __future__ import annotations

import numpy as np

from explorer.evaluation import compare, report
from explorer.evaluation.errors import (
    analyse_errors,
    categories_by_errors,
    cell_image_ids,
    confusion,
)
from tests.evaluation.test_cocoeval import made, oracle, ours
from tests.evaluation.test_errors import _case, det
from tests.helpers import tiny


def _pycocotools_image_counts(e, min_score: float) -> dict[int, tuple[int, int, int]]:
    """Per image: TP, FP (detections scoring >= min_score, at IoU 0.5, area all, maxDets 100,
    not ignored) and objects not ignored, from pycocotools' evalImgs."""
    counts: dict[int, list[int]] = {}
    for ev in e.evalImgs:
        if ev is None or ev["aRng"] != e.params.areaRng[0] or ev["maxDet"] != 100:
            continue
        row = counts.setdefault(ev["image_id"], [0, 0, 0])
        scores = np.asarray(ev["dtScores"])
        kept = (scores >= min_score) & ~np.asarray(ev["dtIgnore"][0], bool)
        matched = np.asarray(ev["dtMatches"][0]) > 0
        row[0] += int((kept & matched).sum())
        row[1] += int((kept & ~matched).sum())
        row[2] += int((~np.asarray(ev["gtIgnore"], bool)).sum())
    return {k: (v[0], v[1], v[2]) for k, v in counts.items()}


def test_image_counts_are_pycocotools_matches_at_a_threshold(tmp_path):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", seed=3)
    e, _ = oracle(gt, dt, "bbox")
    _, _, evaluation = ours(gt, dt, "bbox")
    for min_score in (0.0, 0.5, 0.9):
        counts = report.image_counts(evaluation, min_score)
        want = _pycocotools_image_counts(e, min_score)
        got = {
            int(i): (int(tp), int(fp), int(tp + fn))
            for i, tp, fp, fn in zip(
                counts["image_id"],
                counts["true_positives"],
                counts["false_positives"],
                counts["false_negatives"],
                strict=True,
            )
        }
        assert {k: v for k, v in got.items() if any(v)} == {k: v for k, v in want.items() if any(v)}
        per_category = report.counts_at(evaluation, min_score)
        assert counts["true_positives"].sum() == per_category["true_positives"].sum()


def test_the_mean_pr_curve_is_pycocotools_precision_over_thresholds(tmp_path):
    gt, _ = tiny("val2017")
    dt = made(gt, tmp_path / "dt.json", "bbox", seed=4)
    e, _ = oracle(gt, dt, "bbox")
    _, _, evaluation = ours(gt, dt, "bbox")
    p = e.eval["precision"][:, :, :, 0, -1]
    k = int(np.flatnonzero(p[0, 0] > -1)[0])
    assert np.allclose(report.pr_curve_mean(evaluation, k), p[:, :, k].mean(axis=0))
    kept = p[0, 0] > -1
    mean = report.pr_curve_mean(evaluation)
    assert np.allclose(mean, p[:, :, kept].mean(axis=(0, 2)))
    assert np.isclose(mean.mean(), e.stats[0])  # COCO's AP is the mean curve's mean


def test_the_busiest_categories_and_a_cells_images(tmp_path):
    dets = [
        det(1, 1, [0, 0, 100, 100], 0.9),  # the cat found
        det(1, 1, [150, 150, 100, 100], 0.7),  # the dog called cat
        det(2, 2, [0, 0, 50, 50], 0.3),  # a dog on an image without objects
    ]
    index, detections, evaluation = _case(tmp_path, dets)
    matrix = confusion(evaluation, analyse_errors(evaluation, index, detections))
    cat, dog, background = 0, 1, 2
    assert matrix.matrix[cat, cat] == 1 and matrix.matrix[dog, cat] == 1
    assert matrix.matrix[background, dog] == 1
    # the dog: one confusion and one detection on background; the cat: one confusion
    assert categories_by_errors(matrix.matrix).tolist() == [dog, cat]
    assert cell_image_ids(evaluation, matrix, dog, cat).tolist() == [1]
    assert cell_image_ids(evaluation, matrix, background, dog).tolist() == [2]
    assert cell_image_ids(evaluation, matrix, cat, dog).tolist() == []


def test_two_files_side_by_side(tmp_path):
    gt, _ = tiny("val2017")
    a_file = made(gt, tmp_path / "a.json", "bbox", seed=3)
    b_file = made(gt, tmp_path / "b.json", "bbox", seed=7)
    _, _, a = ours(gt, a_file, "bbox")
    _, _, b = ours(gt, b_file, "bbox")
    e_a, _ = oracle(gt, a_file, "bbox")
    changes = compare.category_changes(a, b)
    assert changes["category_id"].tolist() == list(e_a.params.catIds)
    want = [
        float(p[p > -1].mean()) if (p > -1).any() else -1.0
        for p in (e_a.eval["precision"][:, :, k, 0, -1] for k in range(len(e_a.params.catIds)))
    ]
    assert np.allclose(changes["ap_a"], want)
    both = (changes["ap_a"] > -1) & (changes["ap_b"] > -1)
    assert np.allclose(changes["change"][both], (changes["ap_b"] - changes["ap_a"])[both])
    assert np.isnan(changes["change"][~both]).all()
    images = compare.image_changes(report.image_counts(a, 0.5), report.image_counts(b, 0.2))
    assert (images["gain"] == images["tp_b"] - images["tp_a"]).all()
    better = compare.most_changed(images, 5, better=True)
    worse = compare.most_changed(images, 5, better=False)
    assert len(better) and (np.diff(images["gain"][better]) <= 0).all()
    assert not set(better.tolist()) & set(worse.tolist())
    assert (images["gain"][worse] <= 0).all()


def test_most_changed_orders_by_gain_then_fewer_false_positives():
    changes = compare.ImageChange(
        image_id=np.array([10, 11, 12, 13, 14]),
        tp_a=np.array([1, 1, 3, 2, 0]),
        tp_b=np.array([3, 2, 1, 2, 1]),
        fp_a=np.array([0, 4, 0, 5, 0]),
        fp_b=np.array([0, 1, 0, 1, 0]),
        objects=np.array([3, 3, 3, 3, 1]),
        gain=np.array([2, 1, -2, 0, 1]),
    )
    assert compare.most_changed(changes, 10, better=True).tolist() == [0, 1, 4, 3]
    assert compare.most_changed(changes, 10, better=False).tolist() == [2]
    assert compare.most_changed(changes, 2, better=True).tolist() == [0, 1]
