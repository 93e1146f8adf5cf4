"""Training: classifiers on object crops, segmenters on semantic masks; run folders under
work/runs (the user's work, kept out of the disposable cache).

Names are resolved on first use, so importing ``explorer.training.runs`` (the model pickers do)
does not import torch.
"""

__all__ = ["PRESET_NAMES", "Stopped", "TrainConfig", "task_models", "train"]


def __getattr__(name: str):
    if name in ("PRESET_NAMES", "TrainConfig", "task_models"):
        from explorer.training import config

        return getattr(config, name)
    if name == "Stopped":
        from explorer.errors import Stopped

        return Stopped
    if name == "train":
        from explorer.training.trainer import train

        return train
    raise AttributeError(f"module 'explorer.training' has no attribute {name!r}")
