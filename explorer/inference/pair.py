"""A classifier and a segmenter judged together (``compare``, ``mistakes``), as one value."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.errors import ExplorerError
from explorer.models.tasks import CLASSIFY, SEGMENT, TaskKind
from explorer.models.weights import LoadedModel


@dataclass(frozen=True)
class ModelPair:
    """The two models; made only with a classifier and a segmenter in their places.

    Raises:
        ExplorerError: a model of another task in either place.
    """

    classifier: LoadedModel
    segmenter: LoadedModel

    def __post_init__(self) -> None:
        check_role(self.classifier, CLASSIFY)
        check_role(self.segmenter, SEGMENT)


def check_role(model: LoadedModel, kind: TaskKind) -> None:
    """Raise ExplorerError unless ``model`` is a model of ``kind``'s task."""
    if model.task != kind.name:
        raise ExplorerError(f"{model.name}: a {model.task} model, not a {kind.noun}")
