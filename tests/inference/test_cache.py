"""The prediction cache: asking again never runs the model."""

from __future__ import annotations

import pytest

from explorer.coco.dataset import Dataset
from explorer.inference import classification
from explorer.inference import runner as infer_runner
from explorer.inference.options import RunOptions
from explorer.models import (
    WeightsFile,
    load_model,
)


def test_cache_answers_without_running_the_model(real, alexnet_file, monkeypatch):
    index, images = real
    model = load_model("alexnet", WeightsFile(alexnet_file))
    first = classification.classification_table(
        model, Dataset(index, images), crops=True, image_rows=[0, 1], options=RunOptions(workers=0)
    )
    monkeypatch.setattr(infer_runner, "run", lambda *a, **k: pytest.fail("the model ran again"))
    again = classification.classification_table(
        model, Dataset(index, images), crops=True, image_rows=[0, 1], options=RunOptions(workers=0)
    )
    assert first.equals(again) and len(first) == sum(
        not index.annotations["iscrowd"][a] for r in (0, 1) for a in index.annotation_rows(r)
    )
