"""The model a run trains: the record's architecture for the dataset's classes, started from
random weights or (fine-tuning) from its published weights with a new head.

Models with published weights are built in the published layout (so the weights fit), filled
when the run asks for it, then given a head for the dataset's classes (as timm's
``reset_classifier`` does); the others are built for the dataset's classes directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from explorer.errors import WeightsError
from explorer.models import create_model, get_spec
from explorer.models.registry import ModelSpec
from explorer.models.weights import load_model

if TYPE_CHECKING:
    from torch import nn

    from explorer.training.settings import TrainSettings


def model_for_run(cfg: TrainSettings, num_classes: int, notes: list[str]) -> nn.Module:
    """The run's model with ``num_classes`` outputs; what happened to published weights (used,
    unavailable, or not offered) is added to ``notes``."""
    spec = get_spec(cfg.model)
    if spec.weights_enum is None:
        model = create_model(cfg.model, num_classes, encoder=cfg.encoder)
        if cfg.pretrained and spec.pretrained_note:
            notes.append(spec.pretrained_note)
    else:
        model = create_model(cfg.model, spec.head_size, encoder=cfg.encoder, aux_loss=True)
        if cfg.pretrained:
            _start_from_published(model, spec, notes)
        assert spec.reset_head is not None  # a record with published weights can swap its head
        spec.reset_head(model, num_classes)
    if cfg.freeze_features and spec.freeze_features:
        spec.freeze_features(model)
    return model


def _start_from_published(model: nn.Module, spec: ModelSpec, notes: list[str]) -> None:
    try:
        published = load_model(spec.name, device="cpu").module.state_dict()
    except WeightsError as e:
        notes.append(f"pretrained weights unavailable, trained from scratch: {e}")
        return
    # not strict: the inference module was loaded without torchvision's auxiliary head
    model.load_state_dict(published, strict=False)
    if spec.pretrained_note:
        notes.append(spec.pretrained_note)
