"""The prediction cache, and :func:`predict`: a run of the model that asks the cache first.

Use :func:`predict` everywhere a prediction is shown or scored (the CLI, the pages, the tables
and evaluations): asking again for a prediction it has never runs the model. Use
:func:`explorer.inference.runner.run` (or ``run_paths``) only when the model itself must run,
e.g. to time it or to test it.

The cache (``<cache>/predictions/<key>.sqlite``) is keyed by the dataset (annotation
fingerprint + image folder), the model name, a fingerprint of its weights and its preprocessing;
inside it, each item's record is under :attr:`Item.key <explorer.inference.runner.Item.key>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from explorer.coco.dataset import Dataset
from explorer.errors import StorageError
from explorer.inference.options import DEFAULT_OPTIONS, IN_THIS_THREAD, RunOptions
from explorer.inference.outputs import OutputCodec, codec_for
from explorer.inference.runner import Item, LocalEngine, Prediction, items_for_images
from explorer.models.weights import LoadedModel
from explorer.paths import cache_dir

FLUSH_EVERY = 64  # records written per transaction while a run goes on


class PredictionStore:
    """A key -> bytes store in one SQLite file (safe across threads and processes)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS p (k TEXT PRIMARY KEY, v BLOB)")

    @contextlib.contextmanager
    def _connect(self):
        """A connection that commits on success and is closed after the ``with`` block (on a
        failure SQLite rolls the transaction back: the file stays whole).

        Raises:
            StorageError: the disk is full (or the folder read-only).
        """
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                yield db
        except sqlite3.OperationalError as e:
            code = getattr(e, "sqlite_errorcode", None)
            if code not in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY):
                raise
            reason = "the disk is full" if code == sqlite3.SQLITE_FULL else "it is read-only"
            raise StorageError(f"{self.path.parent}: {reason} ({e})") from None

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        with self._lock, self._connect() as db:
            for k in range(0, len(keys), 500):  # SQLite limits the parameters of one query
                part = keys[k : k + 500]
                rows = db.execute(
                    f"SELECT k, v FROM p WHERE k IN ({','.join('?' * len(part))})", part
                )
                out.update(dict(rows.fetchall()))
        return out

    def put_many(self, items: dict[str, bytes]) -> None:
        if items:
            with self._lock, self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO p VALUES (?, ?)", list(items.items()))


def store_for(model: LoadedModel, dataset: Dataset) -> PredictionStore:
    """The store of this model's predictions on this dataset (created when new)."""
    return PredictionStore(cache_dir("predictions") / f"{store_name(model, dataset)}.sqlite")


def store_name(model: LoadedModel, dataset: Dataset) -> str:
    """The name of that store: a hash of the dataset (annotation fingerprint, image folder), the
    model, its weights and its preprocessing."""
    images = os.path.realpath(dataset.images) if dataset.images else ""
    parts = [
        dataset.index.fingerprint,
        images,
        model.name,
        model.encoder or "",
        model.weights_key,
        model.preprocess.key,
        str(len(model.class_names)),
        *(["features"] if model.features else []),
    ]
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:24]


def predict(
    model: LoadedModel,
    dataset: Dataset,
    items: Sequence[Item],
    options: RunOptions = DEFAULT_OPTIONS,
) -> Iterator[Prediction]:
    """Like :func:`explorer.inference.runner.run` but through the cache: cached items first, then
    the model's answers for the rest (stored as they come), from ``options.engine`` (None: this
    process). Outputs are :data:`~explorer.inference.outputs.Record` values."""
    store, codec = store_for(model, dataset), codec_for(model)
    cached = store.get_many([it.key for it in items])
    todo = [it for it in items if it.key not in cached]
    for it in items:
        if it.key in cached:
            yield Prediction(it, codec.decode(cached[it.key]), None)
    done = len(items) - len(todo)
    progress = options.progress
    if progress:
        progress(done, len(items))
    if not todo:
        return
    shifted = (lambda d, t: progress(done + d, len(items))) if progress else None
    engine = options.engine or LocalEngine()
    fresh = engine.run(model, dataset, todo, options.reporting(shifted))
    yield from _store_as_they_come(codec, store, fresh)


def predict_image(model: LoadedModel, dataset: Dataset, image_row: int) -> Prediction:
    """One whole image through the cache, in the calling thread (a page showing one image
    needs no worker processes)."""
    items = items_for_images(dataset.index, [image_row])
    (prediction,) = predict(model, dataset, items, IN_THIS_THREAD)
    return prediction


def _store_as_they_come(
    codec: OutputCodec, store: PredictionStore, fresh: Iterator[Prediction]
) -> Iterator[Prediction]:
    """Encode and store each new output, yielding its decoded record (what a later call gets);
    what is done is stored even when the run stops half-way."""
    pending: dict[str, bytes] = {}
    try:
        for it, out, err in fresh:
            if out is None:
                yield Prediction(it, None, err)
                continue
            blob = codec.encode(out)
            pending[it.key] = blob
            if len(pending) >= FLUSH_EVERY:
                store.put_many(pending)
                pending = {}
            yield Prediction(it, codec.decode(blob), None)
    finally:
        store.put_many(pending)
