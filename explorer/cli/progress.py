"""The CLI's progress renderers, all tqdm on stderr: a bar over images for the batch commands,
a bar per training epoch with a line per finished one, and a download's bars.

tqdm is imported when the first bar is drawn, so that building the parser stays light.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

    from explorer.training.events import Event, Step


def progress_callback(desc: str, quiet: bool) -> Callable[[int, int], None] | None:
    """A tqdm-backed callback (done, total) on stderr."""
    if quiet:
        return None
    from tqdm import tqdm

    bars: list = []  # made at the first call, when the total is known: a bar made before it
    # drew a second, total-less bar ("predict: 0img [00:00, ?img/s]") above the real one

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, unit="img", total=total, leave=False))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    return update


class TrainProgress:
    """A tqdm bar per epoch on stderr, and one line per finished epoch."""

    def __init__(self, quiet: bool):
        self.quiet, self.note = quiet, ""
        self.bar: tqdm | None = None  # this epoch's

    def __call__(self, event: Event) -> None:
        from explorer.training.events import EpochEnd, Step

        if self.quiet:
            return
        if isinstance(event, Step):
            self._step(event)
        elif isinstance(event, EpochEnd):
            r = event.record
            score = (
                f"val_acc {r['val_acc']:.3f}"
                if "val_acc" in r
                else f"val_miou {r['val_miou']:.3f} pixel_acc {r['val_pixel_acc']:.3f}"
            )
            print(
                f"epoch {r['epoch']}/{event.epochs}: train_loss {r['train_loss']:.4f} val_loss "
                f"{r['val_loss']:.4f} {score} ({r['seconds']:.0f} s, "
                f"{r['images_per_s']:.0f} img/s)",
                file=sys.stderr,
            )
            if event.note != self.note:  # the time budget shortened the plan: say it once
                self.note = event.note
                print(event.note, file=sys.stderr)

    def _step(self, event: Step) -> None:
        from tqdm import tqdm

        desc = f"epoch {event.epoch}/{event.epochs}"
        if self.bar is None or self.bar.desc != desc:
            self.close()
            self.bar = tqdm(total=event.batches, desc=desc, leave=False)
        self.bar.n = event.batch
        self.bar.set_postfix(loss=f"{event.loss:.3f}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class DownloadBars:
    """tqdm bars for a download's progress: the annotation zip in bytes, then the images in
    images and in bytes (MB), each with its rate (and ETA when the total is known)."""

    def __init__(self, file) -> None:
        self._file = file
        self._stage = ""
        self._bars: list = []

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if p.stage != self._stage:
            self.close()
            self._stage = p.stage
            common = {"file": self._file, "dynamic_ncols": True}
            mb = {"unit": "B", "unit_scale": True, "unit_divisor": 1000, **common}
            if p.stage == "annotations":
                self._bars = [tqdm(desc="annotations zip", **mb)]
            elif p.stage == "images":
                files = tqdm(desc="images", unit="img", total=p.files_total, **common)
                files.update(p.files_done)
                self._bars = [files, tqdm(desc="received", position=1, **mb)]
        if not self._bars:
            return
        byte_bar = self._bars[-1]
        byte_bar.total = p.bytes_total
        byte_bar.update(p.bytes_done - byte_bar.n)
        if len(self._bars) == 2:
            self._bars[0].update(p.files_done - self._bars[0].n)

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars = []
