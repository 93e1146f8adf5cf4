"""Models: the registry (one record per model, ``create_model``), weights (``load_model``),
preprocessing, devices."""

from explorer.models.device import choose_device
from explorer.models.outputs import logits
from explorer.models.registry import (
    SMP_ENCODERS,
    ModelSpec,
    QuickPreset,
    create_model,
    get_spec,
    list_models,
    register,
    unregister,
)
from explorer.models.weights import (
    PUBLISHED,
    UNTRAINED,
    LoadedModel,
    Published,
    Untrained,
    WeightsChoice,
    WeightsFile,
    load_model,
    weights_choice,
)

__all__ = [
    "PUBLISHED",
    "SMP_ENCODERS",
    "UNTRAINED",
    "LoadedModel",
    "Published",
    "Untrained",
    "WeightsChoice",
    "WeightsFile",
    "ModelSpec",
    "QuickPreset",
    "choose_device",
    "create_model",
    "get_spec",
    "list_models",
    "load_model",
    "logits",
    "register",
    "unregister",
    "weights_choice",
]
