"""Mistake scores are calibrated by the models' measured quality: real weakly trained models on
the sample cannot look confident, and a model at its task's threshold is not changed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.inference import mistakes
from explorer.inference.options import RunOptions
from explorer.inference.pair import ModelPair
from explorer.models import UNTRAINED, WeightsFile, load_model
from explorer.models.quality import Quality, checkpoint_quality
from explorer.models.tasks import CLASSIFY, SEGMENT
from explorer.training.tasks import train_task

ROWS = np.arange(30)
EVERYTHING = mistakes.Settings(min_wrong_label=0, min_bad_mask=0, min_missing=0)


@pytest.fixture(scope="module")
def weak(weak_runs, sample_root):
    """The weak runs loaded as a page or the CLI loads them, on the sample's val split."""
    images = sample_root / "val2017"
    index = open_index(sample_root / "annotations/instances_val2017.json", images=images)
    cls = load_model(str(weak_runs["cls"]), device="cpu")
    seg = load_model(str(weak_runs["seg"]), device="cpu")
    return Dataset(index, images), cls, seg


def _scores(cls, seg, dataset, settings=EVERYTHING) -> mistakes.Result:
    return mistakes.find_mistakes(
        ModelPair(cls, seg), dataset, ROWS, settings, options=RunOptions(workers=0)
    )


def _unmeasured(model):
    """The same model (same weights, same cached predictions) with no quality on record: what
    every score was before calibration."""
    return dataclasses.replace(model, measured=Quality(model.task, "not measured"))


def test_weak_runs_carry_their_measured_quality(weak, weak_runs):
    _, cls, seg = weak
    for model, kind in ((cls, CLASSIFY), (seg, SEGMENT)):
        q = model.quality
        assert q.measured and q.epoch == 1
        assert q.value < kind.trusted_quality and q.weak
        assert q.trust == pytest.approx(q.value / kind.trusted_quality)
        assert f"{kind.quality_metric} {q.value:.3f}" in q.describe()
        assert f"Weak {kind.noun}" in (q.warning() or "")
    import json

    status = json.loads((weak_runs["seg"] / "status.json").read_text())
    assert seg.quality.value == pytest.approx(status["best"])  # the run's own record


def test_a_weak_models_scores_are_bounded_by_its_quality(weak):
    dataset, cls, seg = weak
    raw = _scores(_unmeasured(cls), _unmeasured(seg), dataset)
    calibrated = _scores(cls, seg, dataset)
    bound = max(cls.quality.trust, seg.quality.trust)
    raw_scores = [r["score"] for r in raw.rows]
    scores = [r["score"] for r in calibrated.rows]
    # what the walk saw: uncalibrated, such models call annotations wrong with near certainty
    assert max(raw_scores) > 0.9
    assert max(scores) <= bound + 1e-9 < 0.5
    for r in calibrated.rows:
        if r["kind"] == "bad_mask":
            assert r["score"] == pytest.approx(seg.quality.trust * (1 - r["mask_iou"]))
    # with the default thresholds, nothing they say is a suspect any more
    assert len(_scores(_unmeasured(cls), _unmeasured(seg), dataset, mistakes.Settings()).rows)
    assert not _scores(cls, seg, dataset, mistakes.Settings()).rows


def test_models_at_their_threshold_rank_as_uncalibrated(weak):
    """Calibration changes nothing for models measured at or above their tasks' thresholds."""
    dataset, cls, seg = weak
    good = [
        dataclasses.replace(m, measured=Quality(m.task, "measured", k.trusted_quality, 1))
        for m, k in ((cls, CLASSIFY), (seg, SEGMENT))
    ]
    raw = _scores(_unmeasured(cls), _unmeasured(seg), dataset)
    trusted = _scores(*good, dataset)
    assert [(r["annotation_id"], r["kind"], r["score"]) for r in trusted.rows] == [
        (r["annotation_id"], r["kind"], r["score"]) for r in raw.rows
    ]


def test_untrained_evidence_counts_for_nothing(weak):
    dataset, cls, _ = weak
    seg = load_model("smp-deeplabv3", UNTRAINED, "cpu", "resnet18", dataset.index.categories)
    assert seg.quality.measurement == "untrained" and seg.quality.trust == 0.0
    assert "untrained" in (seg.quality.warning() or "")
    result = _scores(cls, seg, dataset)
    assert all(r["score"] <= cls.quality.trust + 1e-9 for r in result.rows)
    assert not [r for r in result.rows if r["kind"] == "bad_mask" and r["score"] > 0]


def test_what_a_checkpoint_says_of_its_quality(weak_runs, alexnet_file):
    import torch

    last = torch.load(weak_runs["cls"] / "last.pt", map_location="cpu", weights_only=True)
    assert checkpoint_quality("classify", last).measured  # one epoch: last is the best
    later = {**last, "epoch": last["epoch"] + 1}  # a last.pt after the best epoch
    assert checkpoint_quality("classify", later).measurement == "not measured"
    assert checkpoint_quality("classify", {**last, "best_epoch": -1, "best": -1.0}).trust == 1.0
    assert not checkpoint_quality("classify", {**last, "best": math.nan}).measured
    plain = load_model("alexnet", WeightsFile(alexnet_file), "cpu")  # a plain state_dict file
    assert plain.quality.measurement == "not measured" and not plain.quality.weak
    assert "not measured on this dataset" in plain.quality.describe()


def test_the_training_tasks_measure_the_kinds_metric():
    for kind in (CLASSIFY, SEGMENT):
        assert train_task(kind.name).metric.name == kind.quality_metric


def test_the_cli_says_how_weak_its_models_are(weak_runs, sample_root, tmp_path):
    """`mistakes` on the weak runs names each model's measured quality and warns, as the pages
    do: its table is not read as confident."""
    from tests.helpers import run_cli

    ann = sample_root / "annotations/instances_val2017.json"
    r = run_cli(
        *("mistakes", "--coco", str(ann), "--images", str(sample_root / "val2017")),
        *("--classifier", str(weak_runs["cls"]), "--segmenter", str(weak_runs["seg"])),
        *("--image-ids", "200015", "--device", "cpu", "--quiet", "--out", str(tmp_path / "m.csv")),
    )
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: the ")]
    assert [w.split(":")[1].strip() for w in warnings] == ["the classifier", "the segmenter"]
    assert all("Weak" in w and "val_" in w for w in warnings), warnings
