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
from explorer.models.weights import load_model, published_file, published_here

if TYPE_CHECKING:
    from torch import nn

    from explorer.training.settings import TrainSettings


def has_published_weights(name: str) -> bool:
    """Whether a run of this model can start from published weights (the "Start from published
    weights" box is off for the others)."""
    return get_spec(name).weights_enum is not None


def published_weights_missing(name: str) -> str:
    """What starting from published weights needs first, in a line ("" when they are on this
    machine, or the model has none): said before a run starts, not after it failed."""
    spec = get_spec(name)
    if spec.weights_enum is None or published_here(name):
        return ""
    url, path = published_file(spec)
    return (
        f"{name}'s published weights are not on this machine: the run downloads them first "
        f"from {url} (to {path}), and stops with the reason if it cannot."
    )


def model_for_run(cfg: TrainSettings, num_classes: int, notes: list[str]) -> nn.Module:
    """The run's model with ``num_classes`` outputs; the published weights used are added to
    ``notes``.

    Raises:
        WeightsError: the run asks for published weights the model has none of, or that cannot
            be obtained (not on this machine, and no download): never a silent start from
            scratch.
    """
    spec = get_spec(cfg.model)
    if cfg.pretrained and spec.weights_enum is None:
        why = f" ({spec.pretrained_note})" if spec.pretrained_note else ""
        raise WeightsError(
            f"{cfg.model} has no published weights to start from{why}: train it without "
            '--pretrained (untick "Start from published weights")'
        )
    if spec.weights_enum is None:
        model = create_model(cfg.model, num_classes, encoder=cfg.encoder)
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
        raise WeightsError(
            f"cannot start from published weights: {e} To train from scratch instead, drop "
            '--pretrained (untick "Start from published weights").'
        ) from None
    # not strict: the inference module was loaded without torchvision's auxiliary head
    model.load_state_dict(published, strict=False)
    if spec.pretrained_note:
        notes.append(spec.pretrained_note)
