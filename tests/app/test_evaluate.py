"""The Evaluate page and the predictions files it reads, under AppTest on coco-tiny with results
files made by the acceptance generator: the page's numbers are pycocotools', the score slider
moves the counts, bad files are one line, the address holds keys, never paths."""

from __future__ import annotations

import os
import re

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.evaluation.test_cocoeval import made, oracle
from tests.evaluation.test_compare import _pycocotools_image_counts
from tests.helpers import ROOT, tiny

APP = str(ROOT / "app.py")
EVALUATE = "pages/evaluate.py"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    st.cache_data.clear()
    st.cache_resource.clear()
    for name in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_PREDICTIONS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """coco-tiny val2017 and results files made on it (bbox, segm) and on train2017."""
    gt, images = tiny("val2017")
    out = tmp_path_factory.mktemp("predictions")
    return {
        "gt": gt,
        "images": images,
        "bbox": made(gt, out / "bbox.json", "bbox", seed=3),
        "segm": made(gt, out / "segm.json", "segm", seed=3),
        "other": made(tiny("train2017")[0], out / "train.json", "bbox", seed=3),
    }


def open_app(monkeypatch, files, *predictions, query=None) -> AppTest:
    """The app on coco-tiny val2017 started with these predictions (its first page, Browse)."""
    monkeypatch.setenv("EXPLORER_COCO", str(files["gt"]))
    monkeypatch.setenv("EXPLORER_IMAGES", str(files["images"]))
    if predictions:
        monkeypatch.setenv("EXPLORER_PREDICTIONS", os.pathsep.join(map(str, predictions)))
    at = AppTest.from_file(APP, default_timeout=300)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def to_evaluate(at: AppTest) -> AppTest:
    at.switch_page(EVALUATE).run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Evaluate"]
    return at


def evaluate_page(monkeypatch, files, *predictions) -> AppTest:
    return to_evaluate(open_app(monkeypatch, files, *predictions))


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def qp(at, key):
    v = at.query_params.get(key)
    return v[-1] if isinstance(v, list) else v


def test_without_predictions_the_page_says_how_to_open_some(monkeypatch, files):
    at = evaluate_page(monkeypatch, files)
    assert not at.error
    (info,) = [i.value for i in at.info]
    assert "--predictions" in info and "Add predictions" in info


def test_the_page_shows_pycocotools_numbers_and_the_address_holds_a_key(monkeypatch, files):
    e, _ = oracle(files["gt"], files["bbox"], "bbox")
    at = evaluate_page(monkeypatch, files, files["bbox"])
    assert not at.error
    assert metrics(at)["AP"] == f"{e.stats[0]:.3f}"
    assert metrics(at)["AP50"] == f"{e.stats[1]:.3f}"
    table = at.table[0].value
    assert table["value"].tolist() == [f"{v:.3f}" for v in e.stats]
    key = qp(at, "preds")
    assert key and re.fullmatch(r"[0-9a-f]{12}", key), key
    assert "/" not in str(at.query_params)  # keys, never paths
    # a fresh browser on a server started without the files opens the same from the address
    for name in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_PREDICTIONS"):
        monkeypatch.delenv(name)
    st.cache_resource.clear()
    again = AppTest.from_file(APP, default_timeout=300)
    again.query_params["ds"], again.query_params["preds"] = qp(at, "ds"), key
    again.run()
    to_evaluate(again)
    assert not again.error
    assert metrics(again)["AP"] == f"{e.stats[0]:.3f}"


def test_the_score_slider_moves_the_counts(monkeypatch, files):
    e, _ = oracle(files["gt"], files["bbox"], "bbox")
    at = evaluate_page(monkeypatch, files, files["bbox"])
    seen = []
    for min_score in (0.0, 0.5, 0.9):
        at.slider(key="ev_score").set_value(min_score).run()
        assert not at.exception
        want = _pycocotools_image_counts(e, min_score).values()
        tp, fp = sum(v[0] for v in want), sum(v[1] for v in want)
        objects = sum(v[2] for v in want)
        got = metrics(at)
        assert (got["TP"], got["FP"], got["FN"]) == (f"{tp:,}", f"{fp:,}", f"{objects - tp:,}")
        assert got["precision"] == f"{tp / max(tp + fp, 1):.3f}"
        seen.append(got["TP"])
    assert len(set(seen)) == 3


def test_a_bad_predictions_file_is_one_error_and_the_page_still_works(monkeypatch, files, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image_id": 1, "category_id": ')
    e, _ = oracle(files["gt"], files["bbox"], "bbox")
    at = open_app(monkeypatch, files, bad, files["bbox"])
    (error,) = [x.value for x in at.error]  # said once, on the page the app opens on
    assert "bad.json" in error and "not valid JSON" in error and "\n" not in error
    to_evaluate(at)
    assert not at.error
    assert metrics(at)["AP"] == f"{e.stats[0]:.3f}"


def test_two_files_side_by_side(monkeypatch, files):
    at = evaluate_page(monkeypatch, files, files["bbox"], f"masks={files['segm']}")
    assert "Two files side by side" in [s.value for s in at.subheader]
    assert (
        at.selectbox(key="ev_vs_a").value == "bbox" and at.selectbox(key="ev_vs_b").value == "masks"
    )
    at.selectbox(key="ev_preds").set_value("masks").run()
    assert not at.exception
    radio = at.radio(key="ev_kind")
    assert radio.options == ["segm", "bbox"] and radio.value == "bbox"  # the kind stays
    e, _ = oracle(files["gt"], files["segm"], "bbox")
    assert metrics(at)["AP"] == f"{e.stats[0]:.3f}"
    radio.set_value("segm").run()
    e, _ = oracle(files["gt"], files["segm"], "segm")
    assert metrics(at)["AP"] == f"{e.stats[0]:.3f}"


def sidebar(monkeypatch, files) -> AppTest:
    monkeypatch.setenv("EXPLORER_COCO", str(files["gt"]))
    monkeypatch.setenv("EXPLORER_IMAGES", str(files["images"]))
    at = AppTest.from_file(str(ROOT / "tests" / "app" / "predictions_app.py"), default_timeout=300)
    at.run()
    assert not at.exception
    return at


def current(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("current: "))


def add(at, path, name="") -> None:
    at.text_input(key="pr_path").input(str(path)).run()
    at.text_input(key="pr_name").input(name).run()
    at.button(key="pr_add").click().run()
    assert not at.exception


def test_the_sidebar_adds_removes_and_refuses_in_one_line(monkeypatch, files, tmp_path):
    at = sidebar(monkeypatch, files)
    assert current(at) == "current: coco-tiny val2017; predictions: none"
    add(at, files["bbox"], "mine")
    assert current(at) == "current: coco-tiny val2017; predictions: mine" and not at.error
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    add(at, bad)
    (error,) = [e.value for e in at.error]
    assert "bad.json" in error and "not valid JSON" in error
    assert current(at) == "current: coco-tiny val2017; predictions: mine"
    add(at, files["other"], "train")
    (error,) = [e.value for e in at.error]
    assert "none of its" in error and "fit coco-tiny val2017" in error
    assert current(at) == "current: coco-tiny val2017; predictions: mine"
    (remove,) = [b for b in at.button if b.key and b.key.startswith("pr_remove_")]
    remove.click().run()
    assert current(at) == "current: coco-tiny val2017; predictions: none" and not qp(at, "preds")


def test_the_sidebar_obeys_the_data_roots(monkeypatch, files):
    monkeypatch.setenv("EXPLORER_DATA_ROOTS", str(files["gt"].parent))  # not the results' folder
    at = sidebar(monkeypatch, files)
    add(at, files["bbox"])
    (error,) = [e.value for e in at.error]
    assert "outside the folders this server may open" in error
    assert current(at).endswith("predictions: none")


def test_another_dataset_drops_the_predictions(monkeypatch, files, sample_root):
    at = sidebar(monkeypatch, files)
    add(at, files["bbox"], "mine")
    assert current(at).endswith("predictions: mine")
    at.radio(key="ds_kind").set_value("Sample").run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert current(at) == "current: sample val2017; predictions: none"
    assert not qp(at, "preds")
