"""Where a dataset comes from: the embedded sample, a COCO root folder, or explicit files.

A :class:`DatasetSource` is two path strings and a label: small, hashable, safe to keep in a
session or a cache key. The app and the CLI resolve user input to one here.
:func:`training_split` says what a source trains on and what it is validated on.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
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
        named = _INSTANCES.search(ann.name)
        if named is None:  # "instances_.json" names no split
            continue
        split = named.group("split")
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
    img: Path | None
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


@dataclass(frozen=True)
class TrainingSplit:
    """What a run trains on and what it validates on.

    ``val_coco`` and ``val_images`` are None when the trainer holds out a seeded 20% of the
    training images instead (the same None a ``TrainConfig`` takes).
    """

    coco: str
    images: str
    val_coco: str | None
    val_images: str | None
    label: str


def training_split(source: DatasetSource) -> TrainingSplit:
    """A COCO layout's train split validated on its val split (the sample's too), else
    ``source`` itself with a seeded 20% of its images held out.

    The pair is any ``annotations/instances_<split>.json`` two whose split names start with
    ``train`` and ``val`` and whose image folders ``<root>/<split>`` exist; with several pairs,
    one that holds ``source``'s own split wins, then one whose suffixes match (``train2017``
    with ``val2017``), then the first by name.
    """
    ann = Path(source.annotations)
    pair = _train_val_pair(ann) if ann.parent.name == "annotations" else None
    if pair is None:
        return TrainingSplit(
            coco=source.annotations,
            images=source.images,
            val_coco=None,
            val_images=None,
            label=f"{source.label} with a seeded 20% of its images held out for validation",
        )
    train, val = pair
    root = ann.parent.parent
    return TrainingSplit(
        coco=str(ann.parent / f"instances_{train}.json"),
        images=str(root / train),
        val_coco=str(ann.parent / f"instances_{val}.json"),
        val_images=str(root / val),
        label=f"{root.name}: {train}, validated on {val}",
    )


def _train_val_pair(ann: Path) -> tuple[str, str] | None:
    """The (train, val) split names to use beside ``ann`` in a COCO layout, if any."""
    root = ann.parent.parent
    present = sorted(
        m.group("split")
        for f in ann.parent.glob("instances_*.json")
        if (m := _INSTANCES.search(f.name)) and f.is_file() and (root / m.group("split")).is_dir()
    )
    own = _INSTANCES.search(ann.name)
    own_split = own.group("split") if own else None
    pairs = [
        (t, v) for t in present if t.startswith("train") for v in present if v.startswith("val")
    ]
    if not pairs:
        return None
    return min(
        pairs,
        key=lambda tv: (own_split not in tv, tv[0][len("train") :] != tv[1][len("val") :], tv),
    )


def initial_source(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> DatasetSource | None:
    """The dataset the app opens on: ``-- --coco A --images D``, else ``$EXPLORER_COCO`` /
    ``$EXPLORER_IMAGES``, else None (the embedded sample).

    A given image folder that does not exist is kept: the annotations open, and the app says
    the folder is missing (the images show as missing), as ``stats`` does.

    Raises:
        DatasetError: the annotation file (or COCO root) does not exist.
    """
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--coco")
    parser.add_argument("--images", default="")
    args, _ = parser.parse_known_args(argv or [])
    coco, images = (
        args.coco or env.get("EXPLORER_COCO"),
        args.images or env.get("EXPLORER_IMAGES", ""),
    )
    if not coco:
        return None
    if Path(coco).is_dir():
        return find_splits(coco)[0]
    if images and not Path(images).expanduser().is_dir():
        return dataclasses.replace(from_files(coco), images=str(Path(images).expanduser()))
    return from_files(coco, images)


# ---------------------------------------------------------------------------- links

_KEY = re.compile(r"[0-9a-f]{12}")


def source_key(source: DatasetSource) -> str:
    """A short stable key for a dataset (the URL carries it instead of a path)."""
    return hashlib.sha256(f"{source.annotations}\n{source.images}".encode()).hexdigest()[:12]


def remember_source(source: DatasetSource) -> str:
    """Register a dataset opened on this server under its key (``<cache>/datasets/<key>.json``),
    so that a link carrying the key opens it again, in any session; returns the key."""
    from explorer.paths import atomic_write_json, cache_dir

    key = source_key(source)
    path = cache_dir("datasets") / f"{key}.json"
    if not path.is_file():
        atomic_write_json(path, dataclasses.asdict(source))
    return key


def find_source(key: str) -> DatasetSource | None:
    """The dataset registered under ``key``, or None (an unknown or malformed key)."""
    from explorer.paths import cache_dir

    if not _KEY.fullmatch(key or ""):
        return None
    try:
        doc = json.loads((cache_dir("datasets") / f"{key}.json").read_text())
        source = DatasetSource(str(doc["annotations"]), str(doc["images"]), str(doc["label"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if source_key(source) == key else None
