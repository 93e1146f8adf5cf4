"""How a prediction job runs, as one value: :class:`RunOptions` (batch size, loader workers,
progress, cancel, engine), and the :class:`Engine` protocol the local runner and the Ray engine
share. No option changes a result, only how it is reached."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, TypeAlias

from explorer.errors import Cancelled

if TYPE_CHECKING:
    from explorer.coco.dataset import Dataset
    from explorer.inference.runner import Item, Prediction
    from explorer.models.weights import LoadedModel

Progress: TypeAlias = Callable[[int, int], None]
"""Called with (items done, items in all) after each batch."""


class Engine(Protocol):
    """Where a model runs over items: this process (:class:`~explorer.inference.runner.
    LocalEngine`, the default) or a cluster (:class:`~explorer.inference.ray_engine.RayEngine`)."""

    def run(
        self, model: LoadedModel, dataset: Dataset, items: Sequence[Item], options: RunOptions
    ) -> Iterator[Prediction]:
        """A :class:`~explorer.inference.runner.Prediction` for every item, in any order."""
        ...


@dataclass(frozen=True)
class RunOptions:
    """How a long prediction job runs.

    Attributes:
        batch_size: inputs per batch; None: the output kind's default for the device.
        workers: this process's image-decoding worker processes (0: decode in this thread).
        progress: called with (done, total) after each batch.
        cancel: set it to stop between batches (:class:`~explorer.errors.Cancelled`; what was
            done stays in the prediction cache).
        engine: where the model runs; None: this process.
    """

    batch_size: int | None = None
    workers: int = 2
    progress: Progress | None = None
    cancel: threading.Event | None = None
    engine: Engine | None = None

    def reporting(self, progress: Progress | None) -> RunOptions:
        """The same options reporting to ``progress`` (a part of a larger job's bar)."""
        return replace(self, progress=progress)

    def check_cancel(self) -> None:
        """Raise :class:`~explorer.errors.Cancelled` when the cancel flag is set."""
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("stopped by the user")


DEFAULT_OPTIONS = RunOptions()
"""The defaults (frozen: safe to share as a default argument)."""
IN_THIS_THREAD = RunOptions(workers=0)
"""Images decoded in the calling thread: what a page showing one image needs (no worker
processes to start)."""
