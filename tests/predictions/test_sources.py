"""Predictions files as the app keeps them: named, their kinds read from their records, and
registered under a short key a link carries instead of their path."""

from __future__ import annotations

import json

import pytest

from explorer.errors import PredictionsError
from explorer.predictions.results import available_kinds
from explorer.predictions.sources import (
    PredictionsSource,
    find_predictions,
    keys_of,
    named_path,
    open_predictions,
    predictions_key,
    remember_predictions,
    startup_predictions,
)
from tests.evaluation.test_cocoeval import made
from tests.helpers import tiny


def test_names_come_before_an_equals_sign_unless_the_path_exists(tmp_path):
    assert named_path("/data/dt.json") == ("dt", "/data/dt.json")
    assert named_path("mask-rcnn=/data/dt.json") == ("mask-rcnn", "/data/dt.json")
    odd = tmp_path / "a=b.json"
    odd.write_text("[]")
    assert named_path(str(odd)) == ("a=b", str(odd))


def test_start_up_files_come_from_the_flags_else_the_environment():
    argv = ["--coco", "gt.json", "--predictions", "a.json", "--predictions", "B=b.json"]
    assert startup_predictions(argv, {}) == [("a", "a.json"), ("B", "b.json")]
    env = {"EXPLORER_PREDICTIONS": "x.json:Y=y.json"}
    assert startup_predictions([], env) == [("x", "x.json"), ("Y", "y.json")]
    assert startup_predictions(["--predictions", "a.json"], env) == [("a", "a.json")]
    assert startup_predictions([], {}) == []


def test_kinds_are_read_from_the_records(tmp_path):
    gt, _ = tiny("val2017")
    bbox = made(gt, tmp_path / "bbox.json", "bbox")
    segm = made(gt, tmp_path / "segm.json", "segm")
    assert available_kinds(bbox) == ("bbox",)
    assert available_kinds(segm) == ("segm", "bbox")  # pycocotools' guess first; a mask has a box
    both = tmp_path / "both.json"
    records = json.loads(segm.read_text())
    both.write_text(json.dumps([{**r, "bbox": [1, 2, 3, 4]} for r in records]))
    assert available_kinds(both) == ("bbox", "segm")
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    assert available_kinds(empty) == ("bbox",)


def test_files_that_are_not_results_are_refused_in_one_line(tmp_path):
    gt, _ = tiny("val2017")
    with pytest.raises(PredictionsError, match="instances file"):
        open_predictions(str(gt), "0123456789ab")
    with pytest.raises(PredictionsError, match="file not found"):
        open_predictions(str(tmp_path / "nope.json"), "0123456789ab")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1, "bbox": [1, 2')
    with pytest.raises(PredictionsError, match="not valid JSON"):
        open_predictions(str(broken), "0123456789ab")


def test_a_key_opens_the_same_file_in_any_session(tmp_path):
    gt, _ = tiny("val2017")
    segm = made(gt, tmp_path / "segm.json", "segm")
    opened = open_predictions(str(segm), "0123456789ab", "masks")
    assert opened == PredictionsSource(str(segm), "masks", ("segm", "bbox"), "0123456789ab")
    assert opened.kind == "segm"
    key = remember_predictions(opened)
    assert key == predictions_key(opened) and len(key) == 12 and "/" not in key
    assert find_predictions(key) == opened
    assert find_predictions("0123456789ab") is None  # never registered
    assert find_predictions("../../etc") is None
    other = open_predictions(str(segm), "fedcba987654", "masks")  # another dataset, another key
    assert predictions_key(other) != key


def test_a_links_keys_are_read_forgivingly():
    assert keys_of("0123456789ab,zz,0123456789ab,fedcba987654") == [
        "0123456789ab",
        "fedcba987654",
    ]
    assert keys_of(None) == [] and keys_of("/etc/passwd") == []
