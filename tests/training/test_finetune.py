"""Issue 22: "Start from published weights" never trains from scratch silently."""

from __future__ import annotations

import pytest

from explorer.errors import WeightsError
from explorer.models import weights
from explorer.training import TrainConfig
from explorer.training.finetune import (
    has_published_weights,
    model_for_run,
    published_weights_missing,
)


def settings(model: str, tmp_path):
    return TrainConfig(
        task="classify", coco="a.json", images="img", model=model, pretrained=True,
        out=str(tmp_path / "run"),
    ).resolved()  # fmt: skip


def test_a_model_without_published_weights_refuses_to_start_from_them(tmp_path):
    assert not has_published_weights("alexnet-classic") and has_published_weights("alexnet")
    assert published_weights_missing("alexnet-classic") == ""  # the box is off: nothing to say
    notes: list[str] = []
    with pytest.raises(WeightsError, match="alexnet-classic has no published weights"):
        model_for_run(settings("alexnet-classic", tmp_path), 3, notes)
    assert notes == []


def test_published_weights_that_cannot_be_obtained_stop_the_run_and_say_why(tmp_path, monkeypatch):
    """Offline (a download that fails), the run used to train from scratch and only
    config.json's notes said so."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing downloaded here
    real = weights.published_file

    def unreachable(spec):
        _, path = real(spec)
        return (tmp_path / "offline" / path.name).as_uri(), path  # a source that is not there

    monkeypatch.setattr(weights, "published_file", unreachable)
    said = published_weights_missing("alexnet")
    assert "not on this machine" in said and "downloads them first" in said
    notes: list[str] = []
    with pytest.raises(WeightsError, match=r"cannot start from published weights.*untick"):
        model_for_run(settings("alexnet", tmp_path), 3, notes)
    assert notes == []
