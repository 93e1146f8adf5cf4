"""Models: the registry (``create_model``), weights (``load_model``), preprocessing, devices."""

from explorer.models.device import choose_device
from explorer.models.registry import SMP_ENCODERS, ModelSpec, create_model, get_spec, list_models
from explorer.models.weights import UNTRAINED, LoadedModel, WeightsError, load_model

__all__ = [
    "SMP_ENCODERS",
    "UNTRAINED",
    "LoadedModel",
    "ModelSpec",
    "WeightsError",
    "choose_device",
    "create_model",
    "get_spec",
    "list_models",
    "load_model",
]
