"""A classifier's penultimate layer: the features its last linear layer reads.

:func:`feature_model` turns a loaded classifier into one whose outputs are those features (the
batch runner, the Ray engine and the prediction cache treat it like any classifier, but keep the
vector as it is: no softmax, no top-k). The object map (``explorer.inference.embeddings``) is
built from them.
"""

from __future__ import annotations

import dataclasses

from explorer.errors import ExplorerError
from explorer.models.tasks import task_kind
from explorer.models.weights import LoadedModel


def _penultimate_module(module):
    import torch
    from torch import nn

    class Penultimate(nn.Module):
        """Runs the classifier and returns the input of its last ``nn.Linear`` (flattened)."""

        def __init__(self, classifier: nn.Module, head: nn.Linear):
            super().__init__()
            self.classifier, self.head = classifier, head

        def forward(self, x):
            seen: list = []
            # the hook lives only during this call: the module stays picklable (Ray actors)
            handle = self.head.register_forward_hook(lambda _m, args, _out: seen.append(args[0]))
            try:
                self.classifier(x)
            finally:
                handle.remove()
            return torch.flatten(seen[-1], 1)

    heads = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not heads:
        raise ExplorerError("the model has no linear last layer whose input could be its features")
    return Penultimate(module, heads[-1]).eval()


def feature_model(model: LoadedModel) -> LoadedModel:
    """The same classifier, with the penultimate layer's features as outputs.

    Raises:
        ExplorerError: the model is not a classifier, or has no linear last layer.
    """
    if not task_kind(model.task).scores_per_image:
        raise ExplorerError(
            f"{model.name}: features come from a classifier, not a {model.task} model"
        )
    if model.features:
        return model
    return dataclasses.replace(model, module=_penultimate_module(model.module), features=True)
