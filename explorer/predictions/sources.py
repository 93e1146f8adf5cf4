"""Where predictions come from: a COCO results file, named, for one dataset.

A :class:`PredictionsSource` is a path, a name, the kinds the file can be scored as and the key
of the dataset it is scored against: small, hashable, safe to keep in a session or a cache key.
Links carry its short key (:func:`predictions_key`), never its path, as they carry a dataset's
(:mod:`explorer.coco.sources`): :func:`remember_predictions` registers it under that key,
:func:`find_predictions` resolves it in any session.
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

from explorer.errors import PredictionsError
from explorer.types import RESULT_KINDS, ResultKind

ENVIRONMENT_VARIABLE = "EXPLORER_PREDICTIONS"  # [NAME=]PATH, os.pathsep-separated
_KEY = re.compile(r"[0-9a-f]{12}")


@dataclass(frozen=True)
class PredictionsSource:
    """A COCO results file as the app holds it.

    Attributes:
        path: the results file.
        name: what the pages call it.
        kinds: what it can be scored as, pycocotools' guess first
            (:func:`explorer.predictions.results.available_kinds`).
        dataset: the key of the dataset it is scored against (``coco.sources.source_key``).
    """

    path: str
    name: str
    kinds: tuple[ResultKind, ...]
    dataset: str

    @property
    def kind(self) -> ResultKind:
        """What it is scored as unless a page chooses another of its kinds."""
        return self.kinds[0]


def named_path(value: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` as (name, path); the name defaults to the file's stem. A path
    that exists as given is never split (it may hold ``=``)."""
    name, sep, rest = value.partition("=")
    if sep and name and rest and not Path(value).expanduser().exists():
        return name.strip(), rest
    return Path(value).stem or value, value


def open_predictions(path: str, dataset: str, name: str = "") -> PredictionsSource:
    """A results file to score against the dataset whose key is ``dataset`` (its kinds read
    from its first record).

    Raises:
        PredictionsError: the file is missing, unreadable, not JSON or not a list of results.
    """
    from explorer.predictions.results import available_kinds

    if not path:
        raise PredictionsError("give the path of a COCO results file")
    file = Path(path).expanduser()
    kinds = available_kinds(file)
    return PredictionsSource(str(file), name.strip() or file.stem, kinds, dataset)


def startup_predictions(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """The predictions the app opens with, as (name, path): each ``--predictions [NAME=]PATH``
    of ``argv``, else ``$EXPLORER_PREDICTIONS`` (``os.pathsep``-separated)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--predictions", action="append", default=[])
    args, _ = parser.parse_known_args(argv or [])
    given = args.predictions or [
        v for v in env.get(ENVIRONMENT_VARIABLE, "").split(os.pathsep) if v.strip()
    ]
    return [named_path(v) for v in given]


def predictions_key(source: PredictionsSource) -> str:
    """A short stable key for a predictions file of a dataset (links carry it, not the path)."""
    text = f"{source.path}\n{source.name}\n{source.dataset}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def remember_predictions(source: PredictionsSource) -> str:
    """Register predictions opened on this server under their key
    (``<cache>/predictions/<key>.json``), so that a link carrying the key opens them again, in
    any session; returns the key."""
    from explorer.paths import atomic_write_json, cache_dir

    key = predictions_key(source)
    path = cache_dir("predictions") / f"{key}.json"
    if not path.is_file():
        atomic_write_json(path, dataclasses.asdict(source))
    return key


def find_predictions(key: str) -> PredictionsSource | None:
    """The predictions registered under ``key``, or None (an unknown or malformed key)."""
    from explorer.paths import cache_dir

    if not _KEY.fullmatch(key or ""):
        return None
    try:
        doc = json.loads((cache_dir("predictions") / f"{key}.json").read_text())
        kinds = tuple(k for k in doc["kinds"] if k in RESULT_KINDS)
        source = PredictionsSource(str(doc["path"]), str(doc["name"]), kinds, str(doc["dataset"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return source if kinds and predictions_key(source) == key else None


def keys_of(value: str | None) -> list[str]:
    """The well-formed keys of a link's ``preds`` value (comma-separated), in order, once."""
    return list(dict.fromkeys(k for k in (value or "").split(",") if _KEY.fullmatch(k)))
