"""Mistakes found by two trained models on the sample: planted label flips, deleted objects and
shifted masks rank first; the CLI writes the table; a second run reads the prediction cache."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench.bench_mistakes import missing_scores, plant, ranked_scores
from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference import mistakes, runner
from explorer.inference.detector_mistakes import file_suspects
from explorer.inference.options import RunOptions
from explorer.inference.pair import ModelPair
from explorer.inference.runner import Item
from explorer.models import PUBLISHED, WeightsFile, load_model
from tests.evaluation.test_cocoeval import made
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def noisy(quick_runs, sample_root, tmp_path_factory):
    """The sample's val split with 6% flips, 6% deletions and 6% shifted polygons (seed 7),
    and what the two quick-trained models find in it."""
    path = tmp_path_factory.mktemp("noisy") / "noisy.json"
    planted = plant(sample_root / "annotations/instances_val2017.json", path, 7, 0.06, 0.06, 0.06)
    images = sample_root / "val2017"
    index = open_index(path, images=images)
    cls = load_model(str(quick_runs["cls"]), PUBLISHED, "cpu", dataset_categories=index.categories)
    seg = load_model(str(quick_runs["seg"]), PUBLISHED, "cpu", dataset_categories=index.categories)
    everything = mistakes.Settings(min_wrong_label=0, min_bad_mask=0, min_missing=0)
    result = mistakes.find_mistakes(
        ModelPair(cls, seg),
        Dataset(index, images),
        settings=everything,
        options=RunOptions(workers=0),
    )
    return planted, index, images, cls, seg, mistakes.to_frame(result.rows), result


def test_planted_flips_rank_first_with_the_right_fix(noisy):
    planted, *_, frame, _ = noisy
    flipped = {int(k): v for k, v in planted["flipped"].items()}
    wrong = frame[frame["kind"] == "wrong_label"].sort_values("score", ascending=False)
    ids = [int(a) for a in wrong["annotation_id"]]
    precision, recall = ranked_scores(ids, set(flipped))
    assert precision >= 0.8 and recall >= 0.95, (precision, recall)
    top = wrong.head(len(flipped))
    fixes = [
        flipped[int(a)] == int(c)
        for a, c in zip(top["annotation_id"], top["category_id"], strict=True)
        if int(a) in flipped
    ]
    assert np.mean(fixes) >= 0.8
    # the suggestion is never the annotated category itself
    assert (wrong["category_id"] != wrong["annotated_category_id"]).all()


def test_deleted_objects_are_found_as_missing(noisy):
    planted, *_, frame, _ = noisy
    precision, _ = missing_scores(frame, planted["deleted"])
    assert precision >= 0.5, precision
    missing = frame[frame["kind"] == "missing"]
    assert (missing["annotation_id"] == -1).all() and (missing["suggested_rle"] != "").all()


def test_shifted_masks_are_found_as_bad_masks(noisy):
    planted, *_, frame, _ = noisy
    bad = frame[frame["kind"] == "bad_mask"].sort_values("score", ascending=False)
    precision, _ = ranked_scores([int(a) for a in bad["annotation_id"]], planted["shifted"])
    assert precision >= 0.5, precision
    assert ((bad["mask_iou"] >= 0) & (bad["mask_iou"] <= 1)).all()


def test_every_row_has_the_promised_columns_and_scores(noisy):
    *_, frame, result = noisy
    assert tuple(frame.columns) == mistakes.COLUMNS
    assert frame["score"].between(0, 1).all()
    assert set(frame["kind"]) <= set(mistakes.KINDS)
    assert all(len(b) == 4 for b in frame["bbox"])
    assert result.objects == result.judged > 300  # both models can name every sample category


def test_a_second_run_reads_the_cache(noisy, monkeypatch):
    _, index, images, cls, seg, frame, _ = noisy

    def no_model(*a, **k):
        raise AssertionError("the model ran again")

    monkeypatch.setattr(runner, "run", no_model)
    everything = mistakes.Settings(min_wrong_label=0, min_bad_mask=0, min_missing=0)
    again = mistakes.find_mistakes(
        ModelPair(cls, seg),
        Dataset(index, images),
        settings=everything,
        options=RunOptions(workers=0),
    )
    pd.testing.assert_frame_equal(mistakes.to_frame(again.rows), frame)


def test_a_classifier_that_cannot_name_the_categories_does_not_count(noisy, alexnet_file):
    """ImageNet's AlexNet has no label for the sample's shapes: only the segmenter judges."""
    _, index, images, _, seg, _, _ = noisy
    imagenet = load_model("alexnet", WeightsFile(alexnet_file), "cpu")
    rows = np.arange(10)
    result = mistakes.find_mistakes(
        ModelPair(imagenet, seg), Dataset(index, images), rows, options=RunOptions(workers=0)
    )
    assert result.judged > 0
    assert all(math.isnan(r["classifier_annotated"]) for r in result.rows if r["kind"] != "missing")


def test_region_crops_have_their_own_cache_keys():
    whole, region = Item(0, 5), Item(0, 5, (1.0, 2.0, 3.0, 4.0))
    assert whole.key == "img:5" and region.key == "box:5:1,2,3,4"
    assert Item(0, 5, (1.0, 2.0, 3.0, 4.0), 9).key == "ann:9"


def test_wrong_task_is_an_error(noisy):
    _, index, images, cls, seg, _, _ = noisy
    with pytest.raises(ExplorerError, match="not a classifier"):
        ModelPair(seg, seg)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "explorer", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def test_cli_writes_the_table_and_refuses_a_segmenter_as_classifier(
    noisy, quick_runs, sample_root, tmp_path
):
    ann = sample_root / "annotations/instances_val2017.json"
    data = ["--coco", ann, "--images", sample_root / "val2017", "--device", "cpu", "--quiet"]

    def mistakes_cli(classifier, *more):
        return cli(
            "mistakes", *data, "--classifier", classifier, "--segmenter", quick_runs["seg"], *more
        )

    out = tmp_path / "m.parquet"
    r = mistakes_cli(quick_runs["cls"], "--image-ids", 200015, 200028, "--out", out)
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(out)
    assert tuple(table.columns) == mistakes.COLUMNS
    assert set(table["image_id"]) <= {200015, 200028}
    bad = mistakes_cli(quick_runs["seg"], "--out", out)
    assert bad.returncode == 2 and "not a classifier" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    odd = mistakes_cli(quick_runs["cls"], "--image-ids", 200015, "--out", tmp_path / "m.xlsx")
    assert odd.returncode == 2 and "m.xlsx" in odd.stderr
    # a detector's evidence beside the models': its rows are added, each saying whose they are
    dt = made(ann, tmp_path / "dt.json", "bbox", seed=3)
    both = mistakes_cli(
        quick_runs["cls"], "--image-ids", 200015, 200028, "--predictions", dt, "--out", out
    )
    assert both.returncode == 0, both.stderr
    joined = pd.read_parquet(out)
    models = joined[joined["evidence"] == mistakes.MODELS]
    assert len(models) == len(table) and (models["kind"].values == table["kind"].values).all()
    found = file_suspects(dt, open_index(ann), 0.5, [200015, 200028])
    assert (joined["evidence"] == "detector dt.json").sum() == len(found)
