"""A classifier and a segmenter judged together (``compare``, ``mistakes``), as one value."""

from __future__ import annotations

from dataclasses import dataclass

from explorer.errors import ExplorerError
from explorer.models.tasks import CLASSIFY, SEGMENT
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
        for m, kind in ((self.classifier, CLASSIFY), (self.segmenter, SEGMENT)):
            if m.task != kind.name:
                raise ExplorerError(f"{m.name}: a {m.task} model, not a {kind.noun}")
