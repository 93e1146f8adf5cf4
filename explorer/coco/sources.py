"""Where a dataset comes from: the embedded sample, a COCO root folder, or explicit files.

A :class:`DatasetSource` is two path strings and a label: small, hashable, safe to keep in a
session or a cache key. The app and the CLI resolve user input to one here.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from explorer.errors import DatasetError

_INSTANCES = re.compile(r"instances_(?P<split>.+)\.json$")


@dataclass(frozen=True)
class DatasetSource:
    """An annotation file and its image folder (``images`` may be empty: masks only)."""

    annotations: str
    images: str
    label: str

    @property
    def images_dir(self) -> Path | None:
        return Path(self.images) if self.images else None


def sample_sources() -> list[DatasetSource]:
    """The embedded sample's splits (generated on first use)."""
    from explorer.coco.sample import SPLITS, write_sample

    root = write_sample()
    return [
        DatasetSource(
            str(root / "annotations" / f"instances_{s}.json"), str(root / s), f"sample {s}"
        )
        for s in SPLITS
    ]


def find_splits(root: str | os.PathLike) -> list[DatasetSource]:
    """The ``annotations/instances_<split>.json`` files of a COCO root folder, each with its
    image folder ``<root>/<split>`` (empty when that folder is absent).

    Raises:
        DatasetError: the folder does not exist or holds no instances file.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    ann_dir = root / "annotations" if (root / "annotations").is_dir() else root
    found = []
    for ann in sorted(ann_dir.glob("instances_*.json")):
        split = _INSTANCES.search(ann.name).group("split")
        images = root / split
        found.append(
            DatasetSource(str(ann), str(images) if images.is_dir() else "", f"{root.name} {split}")
        )
    if not found:
        raise DatasetError(f"{root}: no annotations/instances_*.json inside")
    return found


def from_files(annotations: str, images: str = "") -> DatasetSource:
    """A source from an annotation file and an image folder (guessed when empty).

    Raises:
        DatasetError: the annotation file or the image folder does not exist.
    """
    ann = Path(annotations).expanduser()
    if not ann.is_file():
        raise DatasetError(
            f"{ann}: file not found" if not ann.exists() else f"{ann}: is not a file"
        )
    if images:
        img = Path(images).expanduser()
        if not img.is_dir():
            raise DatasetError(f"{img}: image folder not found")
    else:  # COCO layout: <root>/annotations/instances_<split>.json next to <root>/<split>
        m = _INSTANCES.search(ann.name)
        guess = ann.parent.parent / m.group("split") if m else None
        img = guess if guess is not None and guess.is_dir() else None
    m = _INSTANCES.search(ann.name)
    label = (
        f"{ann.parent.parent.name} {m.group('split')}"
        if m and ann.parent.name == "annotations"
        else ann.name
    )
    return DatasetSource(str(ann), str(img) if img else "", label)


def initial_source(
    argv: list[str] | None = None, environ: dict | None = None
) -> DatasetSource | None:
    """The dataset the app opens on: ``-- --coco A --images D``, else ``$EXPLORER_COCO`` /
    ``$EXPLORER_IMAGES``, else None (the embedded sample).

    Raises:
        DatasetError: a given path does not exist.
    """
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--coco")
    parser.add_argument("--images", default="")
    args, _ = parser.parse_known_args(argv or [])
    coco, images = (
        args.coco or environ.get("EXPLORER_COCO"),
        args.images or environ.get("EXPLORER_IMAGES", ""),
    )
    if not coco:
        return None
    return find_splits(coco)[0] if Path(coco).is_dir() else from_files(coco, images)
