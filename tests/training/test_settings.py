"""A run's settings as asked (TrainConfig, None = default) and as decided (TrainSettings)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from explorer.training.config import TrainConfig
from explorer.training.settings import TrainSettings


def test_settings_and_config_name_the_same_fields_in_the_same_order():
    """config.json's ``settings`` keys are the same whichever of the two wrote them."""
    assert [f.name for f in fields(TrainSettings)] == [f.name for f in fields(TrainConfig)]


def test_resolved_settings_are_all_decided(sample_root):
    ann = sample_root / "annotations" / "instances_train2017.json"
    asked = TrainConfig(
        task="segment", coco=str(ann), images=str(sample_root), model="smp-deeplabv3"
    )
    settings = asked.resolved()
    assert isinstance(settings, TrainSettings) and asked.epochs is None
    assert settings.epochs and settings.batch_size and settings.lr and settings.image_size
    assert settings.encoder == "resnet34"  # the segmentation task's default
    with pytest.raises(TypeError, match="settings without epochs"):
        TrainSettings(**{**vars(settings), "epochs": None})


def test_validation_scores_every_class_even_ids_no_mask_can_hold(sample_root):
    """A category id of 255 or more (Objects365, LVIS) has no semantic-mask value, yet it is a
    class the segmenter predicts: the confusion matrix must have a row for it."""
    import numpy as np

    from explorer.coco.dataset import Dataset
    from explorer.models.preprocess import Preprocess
    from explorer.training import validation
    from explorer.training.tasks import Split

    val = Dataset.open(
        sample_root / "annotations" / "instances_val2017.json", sample_root / "val2017"
    )
    ids = [c["id"] for c in val.index.categories] + [300, 301]
    images = validation.load_image_set(
        Split(val, np.arange(1)), ids, Preprocess(resize=32, square=True)
    )
    assert images.num_classes == len(ids) + 1
