"""A dataset as the rest of the package reads it: an opened COCO index and the folder its
images are in, travelling together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from explorer.coco.index import CocoIndex


@dataclass(frozen=True)
class Dataset:
    """An index and its image folder (None: annotations only, no pixels to read)."""

    index: CocoIndex
    images: Path | None = None

    @classmethod
    def open(cls, annotations: str | Path, images: str | Path | None = None) -> Dataset:
        """Open ``annotations`` (image sizes it lacks read from ``images``, when given)."""
        from explorer.coco.index import open_index

        folder = Path(images) if images else None
        return cls(open_index(annotations, images=folder), folder)
