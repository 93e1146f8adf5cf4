"""Progress of a download, counted from many worker threads and reported as one value.

The CLI draws it with tqdm; the app keeps the latest one in a registry that its page polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

Stage = Literal["annotations", "images", "done"]


@dataclass(frozen=True)
class Progress:
    """Where a download stands.

    Attributes:
        stage: ``annotations`` (the zip), ``images``, or ``done``.
        files_done: images present so far (skipped ones included).
        files_total: images wanted (0 while fetching the annotations).
        skipped: images found complete already, not fetched again.
        bytes_done: bytes received in this stage (the zip: counting what a resumed part held).
        bytes_total: bytes expected in this stage, when known (the zip's size; None for images,
            whose sizes are unknown until each arrives).
        started: ``time.monotonic()`` when the stage began (rates and ETAs start there).
    """

    stage: Stage
    files_done: int = 0
    files_total: int = 0
    skipped: int = 0
    bytes_done: int = 0
    bytes_total: int | None = None
    started: float = 0.0


class Tally:
    """Thread-safe counters that call ``on_progress`` with a fresh :class:`Progress` on each
    change (under a lock, so the callback never runs twice at once).

    Args:
        on_progress: the callback, or None to count silently.
    """

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self._on_progress = on_progress
        self._lock = threading.Lock()
        self.now = Progress("annotations", started=time.monotonic())
        self.fetched_bytes = 0  # over every stage: what this run took from the network

    def _change(self, make: Callable[[Progress], Progress]) -> None:
        with self._lock:
            self.now = make(self.now)
            if self._on_progress is not None:
                self._on_progress(self.now)

    def begin(self, stage: Stage, files_total: int = 0, skipped: int = 0) -> None:
        """A new stage: byte counts restart."""
        started = time.monotonic()
        self._change(lambda _: Progress(stage, skipped, files_total, skipped, started=started))

    def sized(self, total: int, held: int) -> None:
        """The stage's size became known, ``held`` bytes of it already on disk."""
        self._change(lambda p: replace(p, bytes_total=total, bytes_done=held))

    def add_bytes(self, n: int) -> None:
        def grow(p: Progress) -> Progress:
            self.fetched_bytes += n
            return replace(p, bytes_done=p.bytes_done + n)

        self._change(grow)

    def file_done(self) -> None:
        self._change(lambda p: replace(p, files_done=p.files_done + 1))

    def finish(self) -> None:
        """The download is over: every wanted file is there."""
        self._change(lambda p: replace(p, stage="done", files_done=p.files_total))
