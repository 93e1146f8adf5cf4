"""Browse with predictions open (issue 23, items 5 and 6), under AppTest on coco-tiny with a
results file made by the acceptance generator: the FN and FP filters keep exactly the images
``report``'s outcome tables say, the sort puts the image with the most errors first, the detail
view lists ``detection_outcomes``'s rows, the threshold hides detections and is the Evaluate
page's, the address holds the view and a fresh session restores it; the Mistakes page lists the
detector's suspects, reviewable, only while predictions are open."""

from __future__ import annotations

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.evaluation import report
from explorer.evaluation.errors import CAUSES, analyse_errors
from explorer.inference import reviews
from explorer.inference.detector_mistakes import detector_suspects
from tests.app.test_evaluate import files, open_app, qp, to_evaluate  # noqa: F401  (fixture)
from tests.evaluation.test_cocoeval import ours
from tests.helpers import ROOT

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch, tmp_path):
    st.cache_data.clear()
    st.cache_resource.clear()
    for name in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_PREDICTIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EXPLORER_WORK", str(tmp_path / "work"))  # the reviews sidecars


@pytest.fixture(scope="module")
def truth(files):  # noqa: F811
    """The outcome tables at every score, computed here from the library's report."""
    index, detections, evaluation = ours(files["gt"], files["bbox"], "bbox")
    return {
        "index": index,
        "detections": detections,
        "evaluation": evaluation,
        "dt": report.detection_outcomes(evaluation, index, detections),
        "gt": report.ground_truth_outcomes(evaluation, index),
        "analysis": analyse_errors(evaluation, index, detections),
    }


def missed_at(truth, min_score: float) -> dict[str, np.ndarray]:
    """The objects missed at ``min_score``: FN at every score, or found only by a detection
    scoring under it."""
    gt, dt = truth["gt"], truth["dt"]
    score = dict(zip(dt["result_row"].tolist(), dt["score"].tolist(), strict=True))
    below = np.array([r >= 0 and score[r] < min_score for r in gt["result_row"].tolist()])
    lost = (gt["outcome"] == "FN") | ((gt["outcome"] == "TP") & below)
    return {"image_id": gt["image_id"][lost], "category_id": gt["category_id"][lost]}


def lost_ids(truth, min_score: float, image: int) -> list[int]:
    gt, dt = truth["gt"], truth["dt"]
    score = dict(zip(dt["result_row"].tolist(), dt["score"].tolist(), strict=True))
    return [
        int(a)
        for a, o, r, i in zip(
            gt["annotation_id"], gt["outcome"], gt["result_row"], gt["image_id"], strict=True
        )
        if i == image and (o == "FN" or (o == "TP" and score[int(r)] < min_score))
    ]


def frame_with(at: AppTest, column: str):
    """The page's table that has ``column``."""
    (table,) = [d.value for d in at.dataframe if column in d.value.columns]
    return table


def shown_ids(at: AppTest) -> list[int]:
    return [
        int(b.key.removeprefix("open_")) for b in at.button if (b.key or "").startswith("open_")
    ]


def matching(at: AppTest) -> int:
    line = next(m.value for m in at.markdown if "images match" in m.value)
    return int(line.split("**")[1].replace(",", ""))


def browse(monkeypatch, files, query=None) -> AppTest:  # noqa: F811
    at = open_app(monkeypatch, files, files["bbox"], query=query)
    if "image_id" not in (query or {}):
        at.selectbox(key="b_page_size").set_value(48).run()
    return at


def test_the_fn_filter_keeps_the_images_missing_that_category(monkeypatch, files, truth):  # noqa: F811
    at = browse(monkeypatch, files)
    lost = missed_at(truth, 0.5)
    person = 1
    want = sorted(set(lost["image_id"][lost["category_id"] == person].tolist()))
    assert 3 < len(want) < 48
    at.selectbox(key="b_fn").set_value(person).run()
    assert not at.exception
    assert matching(at) == len(want) and sorted(shown_ids(at)) == want
    assert qp(at, "fn") == "1"
    at.slider(key="b_score").set_value(0.9).run()  # fewer kept: more missed
    lost = missed_at(truth, 0.9)
    want_90 = sorted(set(lost["image_id"][lost["category_id"] == person].tolist()))
    assert len(want_90) > len(want) and sorted(shown_ids(at)) == want_90
    assert qp(at, "score") == "0.9"


def test_the_fp_filter_keeps_the_images_with_that_cause(monkeypatch, files, truth):  # noqa: F811
    at = browse(monkeypatch, files)
    dt, cause = truth["dt"], truth["analysis"].cause
    seen = 0
    for k, name in enumerate(CAUSES):
        want = sorted(set(dt["image_id"][(dt["score"] >= 0.5) & (cause == k)].tolist()))
        at.selectbox(key="b_fp").set_value(name).run()
        assert not at.exception
        assert sorted(shown_ids(at)) == want, name
        assert qp(at, "fp") == name
        seen += bool(want)
    assert seen >= 2


def test_the_sort_puts_the_image_with_the_most_errors_first(monkeypatch, files, truth):  # noqa: F811
    at = browse(monkeypatch, files)
    index, dt = truth["index"], truth["dt"]
    lost = missed_at(truth, 0.5)
    fp = dt["image_id"][(dt["score"] >= 0.5) & (dt["outcome"] == "FP")]
    errors = {int(i): 0 for i in index.images["id"]}
    for i in [*fp.tolist(), *lost["image_id"].tolist()]:
        errors[int(i)] += 1
    assert shown_ids(at)[0] == int(index.images["id"][0])  # file order at first
    at.selectbox(key="b_sort").set_value("errors").run()
    assert not at.exception and qp(at, "sort") == "errors"
    shown = shown_ids(at)
    assert errors[shown[0]] == max(errors.values())
    assert [errors[i] for i in shown] == sorted((errors[i] for i in shown), reverse=True)


def test_the_detail_view_lists_the_matches_and_the_threshold_hides(monkeypatch, files, truth):  # noqa: F811
    dt = truth["dt"]
    image = 25603
    at = browse(monkeypatch, files, {"image_id": str(image)})
    assert not at.exception
    for min_score in (0.5, 0.3, 0.9):
        at.slider(key="b_score").set_value(min_score).run()
        assert not at.exception
        mine = np.flatnonzero((dt["image_id"] == image) & (dt["score"] >= min_score))
        mine = mine[np.argsort(-dt["score"][mine], kind="stable")]
        table = frame_with(at, "outcome")
        assert table["score"].tolist() == np.round(dt["score"][mine], 3).tolist()
        assert [o.split(":")[0] for o in table["outcome"]] == dt["outcome"][mine].tolist()
        assert table["object"].fillna(-1).astype(int).tolist() == dt["annotation_id"][mine].tolist()
        assert np.allclose(table["IoU"].fillna(-1), np.round(dt["iou"][mine], 3))
        hidden = int(((dt["image_id"] == image) & (dt["score"] < min_score)).sum())
        lost = missed_at(truth, min_score)
        n_lost = int((lost["image_id"] == image).sum())
        (caption,) = [c.value for c in at.caption if "detections drawn" in c.value]
        assert caption.startswith(f"{len(mine)} detections drawn")
        assert f"{n_lost} objects missed" in caption and f"{hidden} detections under" in caption
        if n_lost:
            missed = frame_with(at, "missed object")
            assert sorted(missed["missed object"]) == sorted(lost_ids(truth, min_score, image))


def test_the_address_holds_the_view_and_a_fresh_session_restores_it(monkeypatch, files):  # noqa: F811
    at = browse(monkeypatch, files)
    at.selectbox(key="b_fn").set_value(62).run()
    at.selectbox(key="b_fp").set_value("localisation").run()
    at.selectbox(key="b_sort").set_value("errors").run()
    at.slider(key="b_score").set_value(0.35).run()
    query = {k: qp(at, k) for k in ("ds", "preds", "fn", "fp", "sort", "score")}
    assert query["fn"] == "62" and query["fp"] == "localisation" and query["score"] == "0.35"
    shown = shown_ids(at)
    again = AppTest.from_file(APP, default_timeout=300)
    for k, v in query.items():
        again.query_params[k] = v
    again.run()
    assert not again.exception
    assert again.selectbox(key="b_fn").value == 62
    assert again.selectbox(key="b_fp").value == "localisation"
    assert again.selectbox(key="b_sort").value == "errors"
    assert again.slider(key="b_score").value == 0.35
    assert shown_ids(again) == shown


def test_the_threshold_is_the_evaluate_pages_too(monkeypatch, files):  # noqa: F811
    at = browse(monkeypatch, files)
    at.slider(key="b_score").set_value(0.3).run()
    to_evaluate(at)
    assert at.slider(key="ev_score").value == 0.3
    at.slider(key="ev_score").set_value(0.7).run()
    at.switch_page("pages/browse.py").run()
    assert at.slider(key="b_score").value == 0.7


def to_mistakes(at: AppTest) -> AppTest:
    at.switch_page("pages/mistakes.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_mistakes_lists_the_detectors_suspects_to_review(monkeypatch, files, truth):  # noqa: F811
    at = to_mistakes(open_app(monkeypatch, files, files["bbox"]))
    at.radio(key="q_evidence").set_value(1).run()
    assert not at.exception and not at.error
    index = truth["index"]
    want = detector_suspects(truth["evaluation"], truth["analysis"], index, truth["detections"])
    assert any(
        c.startswith(f"{len(want)} suspects from bbox") for c in (x.value for x in at.caption)
    )
    at.radio(key="q_det_show").set_value("all").run()
    wrong = [r for r in want if r["kind"] == "wrong_label"]
    cards = [m.value for m in at.markdown if "detector bbox.json says" in m.value]
    assert len(cards) == min(8, len(wrong)) and all("the label is wrong, or" in c for c in cards)
    at.button(key="q_det_card_0_yes").click().run()
    assert not at.exception
    decided = reviews.load(files["gt"])
    best = max(wrong, key=lambda r: r["score"])
    key = f"detector bbox.json|wrong_label:{best['annotation_id']}"
    assert decided == {key: "confirmed"}
    assert reviews.row_key({**best, "evidence": "models"}) not in decided  # not the models' row
    at.radio(key="q_det_kind").set_value("missing").run()
    cards = [m.value for m in at.markdown if "where nothing is annotated" in m.value]
    assert len(cards) == min(8, sum(r["kind"] == "missing" for r in want)) > 0
    assert "1 confirmed fixes" in " ".join(c.value for c in at.caption)


def test_mistakes_without_predictions_has_no_detector_evidence(monkeypatch, files):  # noqa: F811
    at = to_mistakes(open_app(monkeypatch, files))
    assert not [r for r in at.radio if r.key == "q_evidence"]
    assert not [c for c in at.caption if "suspects from" in c.value]
