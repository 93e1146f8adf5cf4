"""What a model's forward returns, read the same way everywhere."""

from __future__ import annotations


def logits(output):
    """The logits tensor of a forward pass.

    torchvision's segmenters return a dict (``"out"``, and ``"aux"`` while training with the
    auxiliary head); classifiers and smp models return the tensor itself.
    """
    return output["out"] if isinstance(output, dict) else output
