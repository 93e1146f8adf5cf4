"""Layers the registry's own architectures need (imported when a model is built: torch)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn


class FlattenPooled(nn.Flatten):
    """Flatten after an adaptive average pool to ``side`` x ``side`` (a no-op on the classic
    227 px input), as torchvision's AlexNet does, so that smaller crops train too. It stays a
    parameter-free ``Flatten``: the classic layer table and the checkpoints' keys are unchanged."""

    def __init__(self, side: int = 6):
        super().__init__()
        self.side = side

    def forward(self, x):
        if x.shape[-2:] != (self.side, self.side):
            x = F.adaptive_avg_pool2d(x, self.side)
        return super().forward(x)
