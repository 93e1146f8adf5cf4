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
from explorer.inference.outputs import DamagedRecord, OutputCodec, codec_for
from explorer.inference.runner import Item, LocalEngine, Prediction, items_for_images
from explorer.models.weights import LoadedModel
from explorer.paths import cache_dir

FLUSH_EVERY = 64  # records written per transaction while a run goes on


class DamagedStore(Exception):
    """The store's file is not a store (its caller sets it aside and starts a new one)."""


# SQLite's answers for a file that is not (or no longer) a whole database
_DAMAGE_CODES = {getattr(sqlite3, "SQLITE_CORRUPT", 11), getattr(sqlite3, "SQLITE_NOTADB", 26)}
_COLUMNS = [("k", "TEXT", 1), ("v", "BLOB", 0)]  # (name, type, primary key) of table p


class PredictionStore:
    """A key -> bytes store in one SQLite file (safe across threads and processes).

    A file that is not such a store (truncated, random bytes, a folder, a table of another
    shape) is set aside as ``<name>.damaged-<n>`` and a new store begins: what it held is
    computed again.
    """

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            self._create()
        except DamagedStore:
            self._start_again()

    def _create(self) -> None:
        if self.path.exists() and not self.path.is_file():  # a folder, a pipe, ...
            raise DamagedStore
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS p (k TEXT PRIMARY KEY, v BLOB)")
            columns = [(c[1], c[2].upper(), c[5]) for c in db.execute("PRAGMA table_info(p)")]
        if columns != _COLUMNS:
            raise DamagedStore

    def _start_again(self) -> None:
        set_aside(self.path)
        self._create()  # a fresh file; damage now is not the file's (raised as it is)

    @contextlib.contextmanager
    def _connect(self):
        """A connection that commits on success and is closed after the ``with`` block (on a
        failure SQLite rolls the transaction back: the file stays whole).

        Raises:
            StorageError: the disk is full (or the folder read-only).
            DamagedStore: the file is not a whole SQLite database.
        """
        try:
            with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
                yield db
        except sqlite3.DatabaseError as e:
            code = getattr(e, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _DAMAGE_CODES:  # extended codes too
                raise DamagedStore from None
            if code not in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY):
                raise
            reason = "the disk is full" if code == sqlite3.SQLITE_FULL else "it is read-only"
            raise StorageError(f"{self.path.parent}: {reason} ({e})") from None

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        try:
            return self._get_many(keys)
        except DamagedStore:  # damaged since it was opened (a page of it, say)
            with self._lock:
                self._start_again()
            return {}

    def _get_many(self, keys: list[str]) -> dict[str, bytes]:
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
        if not items:
            return
        try:
            self._put_many(items)
        except DamagedStore:
            with self._lock:
                self._start_again()
            self._put_many(items)

    def _put_many(self, items: dict[str, bytes]) -> None:
        with self._lock, self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO p VALUES (?, ?)", list(items.items()))


def set_aside(path: Path) -> Path:
    """Rename a damaged cache file (or whatever is in its place) to ``<name>.damaged-<n>``,
    the first free ``n``, with SQLite's journals beside it: kept for a look, out of the way.
    Returns the new name."""
    n = 1
    while True:
        aside = path.with_name(f"{path.name}.damaged-{n}")
        if not aside.exists():
            break
        n += 1
    with contextlib.suppress(FileNotFoundError):  # another process set it aside first
        os.rename(path, aside)
    for journal in ("-journal", "-wal", "-shm"):  # never to be replayed into a new store
        with contextlib.suppress(FileNotFoundError):
            os.rename(f"{path}{journal}", f"{aside}{journal}")
    return aside


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
    store, codec, width = store_for(model, dataset), codec_for(model), output_width(model)
    cached = store.get_many([it.key for it in items])
    todo = [it for it in items if it.key not in cached]
    for it in items:
        if it.key in cached:
            try:
                record = codec.decode(cached[it.key], width)
            except DamagedRecord:
                todo.append(it)  # computed again below, and stored over the damaged one
                continue
            yield Prediction(it, record, None)
    done = len(items) - len(todo)
    progress = options.progress
    if progress:
        progress(done, len(items))
    if not todo:
        return
    shifted = (lambda d, t: progress(done + d, len(items))) if progress else None
    engine = options.engine or LocalEngine()
    fresh = engine.run(model, dataset, todo, options.reporting(shifted))
    yield from _store_as_they_come((codec, width), store, fresh)


def output_width(model: LoadedModel) -> int:
    """What a record of the model is checked against: its label count, or a feature model's
    vector length (0 when its head does not say)."""
    if model.features:
        return int(getattr(getattr(model.module, "head", None), "in_features", 0))
    return len(model.class_names)


def predict_image(model: LoadedModel, dataset: Dataset, image_row: int) -> Prediction:
    """One whole image through the cache, in the calling thread (a page showing one image
    needs no worker processes)."""
    items = items_for_images(dataset.index, [image_row])
    (prediction,) = predict(model, dataset, items, IN_THIS_THREAD)
    return prediction


def _store_as_they_come(
    codec_width: tuple[OutputCodec, int], store: PredictionStore, fresh: Iterator[Prediction]
) -> Iterator[Prediction]:
    """Encode and store each new output, yielding its decoded record (what a later call gets);
    what is done is stored even when the run stops half-way."""
    codec, width = codec_width
    pending: dict[str, bytes] = {}
    try:
        for it, out, err in fresh:
            if out is None:
                yield Prediction(it, None, err)
                continue
            blob = codec.encode(out)
            try:
                record = codec.decode(blob, width)
            except DamagedRecord as e:  # NaN outputs, say: not stored, said for this item
                yield Prediction(it, None, f"the model's output is not usable ({e})")
                continue
            pending[it.key] = blob
            if len(pending) >= FLUSH_EVERY:
                store.put_many(pending)
                pending = {}
            yield Prediction(it, record, None)
    finally:
        store.put_many(pending)
