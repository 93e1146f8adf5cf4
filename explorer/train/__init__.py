"""Training: classifiers on object crops, segmenters on semantic masks; run folders under cache/runs."""

from explorer.train.loop import PRESETS, TASK_MODELS, Stopped, TrainConfig, train

__all__ = ["PRESETS", "TASK_MODELS", "Stopped", "TrainConfig", "train"]
