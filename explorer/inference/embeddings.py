"""The object map: every non-crowd object as a point, placed by what a classifier sees in it.

Each object's crop goes through the classifier up to its penultimate layer
(:func:`explorer.models.features.feature_model`; the batch runner or the Ray engine, features
stored in the prediction cache, read :data:`CHUNK` at a time). The vectors are L2-normalised,
reduced by PCA (to :data:`PCA_DIMS`, which keeps nearly all of their neighbourhoods and makes the
rest fast), then to 2-D by the chosen method (:data:`METHODS`: UMAP by default; t-SNE; or
PCA's first two axes). Above :data:`FIT_LIMIT` objects PCA and UMAP learn on a seeded sample and
place the others with ``transform`` (only the 50-D vectors of all objects are held in memory).

The map (and the PCA vectors, for "more like this") is cached under ``<cache>/maps`` by dataset,
model, weights, objects and method: asking again reads it back without running anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.errors import ExplorerError
from explorer.inference.cache import predict, set_aside, store_name
from explorer.inference.options import DEFAULT_OPTIONS, RunOptions
from explorer.inference.runner import items_for_crops
from explorer.models.features import feature_model
from explorer.models.weights import LoadedModel
from explorer.paths import atomic_write_bytes, cache_dir, open_regular

Method = Literal["umap", "tsne", "pca"]
METHODS: tuple[Method, ...] = get_args(Method)
PCA_DIMS = 50
FIT_LIMIT = 50_000  # PCA and UMAP fit on at most this many objects (seeded), transform the rest
CHUNK = 20_000  # features read or computed at a time
SEED = 0


@dataclass(frozen=True)
class ObjectMap:
    """One row per non-crowd object whose crop could be read; ``x``, ``y`` its place."""

    annotation_id: np.ndarray  # int64
    image_id: np.ndarray
    category_id: np.ndarray
    area: np.ndarray  # float64, the annotation's area
    x: np.ndarray  # float32
    y: np.ndarray
    vectors: np.ndarray  # (n, <= PCA_DIMS) float32, unit length: neighbours are found here
    method: Method
    from_cache: bool = False
    unread: int = 0  # objects whose crop could not be read (not on the map)

    def __len__(self) -> int:
        return len(self.annotation_id)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "annotation_id": self.annotation_id,
                "image_id": self.image_id,
                "category_id": self.category_id,
                "area": self.area,
                "x": self.x,
                "y": self.y,
            }
        )

    def neighbours(self, annotation_id: int, k: int = 12) -> np.ndarray:
        """The ``k`` objects most like ``annotation_id`` in feature space (cosine), nearest
        first, as annotation ids (itself left out).

        Raises:
            ExplorerError: the object is not on the map.
        """
        at = np.flatnonzero(self.annotation_id == annotation_id)
        if not len(at):
            raise ExplorerError(f"annotation {annotation_id} is not on the map")
        sim = self.vectors @ self.vectors[at[0]]
        sim[at[0]] = -np.inf
        k = min(k, len(sim) - 1)
        if k <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-sim, k - 1)[:k]
        return self.annotation_id[top[np.argsort(-sim[top])]]


def embed(
    model: LoadedModel,
    dataset: Dataset,
    image_rows=None,
    method: Method = "umap",
    options: RunOptions = DEFAULT_OPTIONS,
) -> ObjectMap:
    """The map of the non-crowd objects of ``image_rows`` (default: every image).

    Raises:
        ExplorerError: unknown method, or the model is not a classifier with a linear head.
    """
    if method not in METHODS:
        raise ExplorerError(f"method {method!r}: choose one of {', '.join(METHODS)}")
    features, index, progress = feature_model(model), dataset.index, options.progress
    rows = np.arange(index.num_images) if image_rows is None else np.asarray(image_rows)
    items = items_for_crops(index, rows)
    key = _map_key(features, dataset, [it.annotation_id for it in items], method)
    cached = _read_map(key, method, np.array([it.annotation_id for it in items], np.int64))
    if cached is not None:
        if progress:
            progress(len(items), len(items))
        return cached
    ids, vectors = _pca_vectors(features, dataset, items, options)
    xy = project(vectors, method)
    result = _object_map(index, ids, vectors, xy, method)
    result = dataclasses.replace(result, unread=len(items) - len(ids))
    _write_map(key, result)
    return result


def _features(features, dataset: Dataset, items, options: RunOptions) -> Iterator[tuple[int, Any]]:
    """``(annotation id, feature vector)`` of every readable item, :data:`CHUNK` items at a
    time through the prediction cache (all of train2017's at once would not fit in memory)."""
    progress = options.progress
    for k in range(0, len(items), CHUNK):
        part = items[k : k + CHUNK]
        shifted = (lambda d, _t, k=k: progress(k + d, len(items))) if progress else None
        for it, out, _ in predict(features, dataset, part, options.reporting(shifted)):
            if out is not None and it.annotation_id is not None:  # crops carry their annotation
                yield it.annotation_id, out


def _pca_vectors(features, dataset: Dataset, items, options: RunOptions) -> tuple[np.ndarray, Any]:
    """The readable objects' ids (in item order) and their unit-length PCA vectors. PCA is
    fitted on at most :data:`FIT_LIMIT` of them (seeded); above that a second pass through the
    cache projects the rest, a chunk at a time."""
    every = np.array([it.annotation_id for it in items], np.int64)
    fit = set(_seeded(every, FIT_LIMIT).tolist())
    kept: dict[int, np.ndarray] = {}
    read: list[int] = []
    for a, out in _features(features, dataset, items, options):
        read.append(a)
        if a in fit:
            kept[a] = np.asarray(out, np.float16)
    ids = every[np.isin(every, read)]
    if len(kept) == len(ids):
        return ids, _reduced(np.stack([kept[a] for a in ids]) if len(ids) else np.zeros((0, 1)))
    pca = _fitted_pca(np.stack(list(kept.values())))
    got: dict[int, np.ndarray] = {}
    batch: list[tuple[int, Any]] = []
    for pair in _features(features, dataset, items, options.reporting(None)):
        batch.append(pair)
        if len(batch) == CHUNK:
            got |= _projected(pca, batch)
            batch = []
    got |= _projected(pca, batch)
    return ids, np.stack([got[a] for a in ids])


def _seeded(values: np.ndarray, limit: int) -> np.ndarray:
    if len(values) <= limit:
        return values
    return np.random.default_rng(SEED).choice(values, limit, replace=False)


def _unit(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _fitted_pca(sample: np.ndarray):
    from sklearn.decomposition import PCA

    dims = min(PCA_DIMS, len(sample), sample.shape[1])
    return PCA(dims, random_state=SEED, svd_solver="randomized").fit(_unit(sample))


def _projected(pca, batch: list[tuple[int, Any]]) -> dict[int, np.ndarray]:
    if not batch:
        return {}
    vectors = _unit(pca.transform(_unit(np.stack([v for _, v in batch]))))
    return {a: v for (a, _), v in zip(batch, vectors, strict=True)}


def _reduced(features: np.ndarray) -> np.ndarray:
    """Unit-length features, reduced by PCA to at most :data:`PCA_DIMS` (unit length again)."""
    x = _unit(features)
    dims = min(PCA_DIMS, len(x), x.shape[1])
    if len(x) > dims > 0 and x.shape[1] > dims:
        x = _unit(_fitted_pca(x).transform(x))
    return x


def project(vectors: np.ndarray, method: Method) -> np.ndarray:
    """``(n, 2)`` float32 places for the vectors (seeded: the same input gives the same map)."""
    n = len(vectors)
    if n < 4 or method == "pca":  # too few points for a neighbourhood graph: PCA's two axes
        out = np.zeros((n, 2), np.float32)
        out[:, : min(2, vectors.shape[1])] = vectors[:, :2]
        return out
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(30.0, (n - 1) / 3)
        return (
            TSNE(2, perplexity=perplexity, random_state=SEED, init="pca")
            .fit_transform(vectors)
            .astype(np.float32)
        )
    return _umap(vectors)


def _umap(vectors: np.ndarray) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():  # "n_jobs overridden by random_state": seeded on purpose
        warnings.simplefilter("ignore")
        from umap import UMAP

        reducer = UMAP(n_neighbors=min(15, len(vectors) - 1), min_dist=0.1, random_state=SEED)
        if len(vectors) <= FIT_LIMIT:
            return reducer.fit_transform(vectors).astype(np.float32)
        pick = np.random.default_rng(SEED).choice(len(vectors), FIT_LIMIT, replace=False)
        reducer.fit(vectors[pick])
        out = np.empty((len(vectors), 2), np.float32)
        for k in range(0, len(vectors), FIT_LIMIT):
            out[k : k + FIT_LIMIT] = reducer.transform(vectors[k : k + FIT_LIMIT])
        return out


def _object_map(index: CocoIndex, ids: np.ndarray, vectors, xy, method: Method) -> ObjectMap:
    anns = index.annotations
    order = np.argsort(anns["id"], kind="stable")
    rows = order[np.searchsorted(anns["id"], ids, sorter=order)] if len(ids) else ids
    return ObjectMap(
        annotation_id=ids,
        image_id=index.images["id"][anns["image_row"][rows]].astype(np.int64),
        category_id=anns["category_id"][rows].astype(np.int64),
        area=anns["area"][rows].astype(np.float64),
        x=xy[:, 0].astype(np.float32),
        y=xy[:, 1].astype(np.float32),
        vectors=vectors,
        method=method,
    )


def _map_key(model: LoadedModel, dataset: Dataset, ids: list, method: Method) -> str:
    h = hashlib.sha1(f"{store_name(model, dataset)}.sqlite".encode())
    h.update(np.asarray(ids, np.int64).tobytes())
    h.update(f"{method}|{PCA_DIMS}|{FIT_LIMIT}|{SEED}|v1".encode())
    return h.hexdigest()[:24]


# what _write_map stores: each column's dtype and number of dimensions
_MAP_COLUMNS = {
    "annotation_id": ("int64", 1),
    "image_id": ("int64", 1),
    "category_id": ("int64", 1),
    "area": ("float64", 1),
    "x": ("float32", 1),
    "y": ("float32", 1),
    "vectors": ("float32", 2),
    "unread": ("int64", 0),
}


def _read_map(key: str, method: Method, ids: np.ndarray) -> ObjectMap | None:
    """The cached map of the objects ``ids``, or None when there is none, or any doubt: a file
    that is not what :func:`_write_map` wrote for them (damaged, forged, another dtype, columns
    of unequal lengths, ids not asked for) is set aside and the map is built again. Sizes are
    checked against the file's own before anything is read, so a forged header costs nothing."""
    path = _map_path(key)
    if not os.path.lexists(path):
        return None
    try:
        cols = _map_columns(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, NotImplementedError):
        cols = None
    if cols is None or not _fits_ids(cols, ids):
        set_aside(path)  # kept for a look; the map is built again
        return None
    unread = int(cols.pop("unread"))
    return ObjectMap(**cols, unread=unread, method=method, from_cache=True)


def _map_path(key: str):
    return cache_dir("maps") / f"{key}.npz"


def _map_columns(path) -> dict[str, np.ndarray]:
    """The columns of a stored map, read only after each member's header was checked against
    its dtype, its size in the archive and the file's size (ValueError when one is not)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        with zipfile.ZipFile(f) as z:
            members = {m.filename: m for m in z.infolist()}
            if set(members) != {f"{c}.npy" for c in _MAP_COLUMNS}:
                raise ValueError("other members")
            if sum(m.file_size for m in members.values()) > size:
                raise ValueError("members larger than the file")
            return {c: _member(z, members[f"{c}.npy"], *_MAP_COLUMNS[c]) for c in _MAP_COLUMNS}


def _member(z: zipfile.ZipFile, member: zipfile.ZipInfo, dtype: str, ndim: int) -> np.ndarray:
    if member.compress_type != zipfile.ZIP_STORED:
        raise ValueError("compressed")
    with z.open(member) as m:
        version = np.lib.format.read_magic(m)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format {version}")
        read_header = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran, got = read_header(m)
        nbytes = math.prod(shape) * got.itemsize  # Python's integers: a forged shape cannot wrap
        if got != np.dtype(dtype) or len(shape) != ndim or fortran:
            raise ValueError("another dtype or shape")
        if nbytes != member.file_size - m.tell():
            raise ValueError("a header that does not fit its data")
        return np.frombuffer(m.read(nbytes), got).reshape(shape)


def _fits_ids(cols: dict[str, np.ndarray], ids: np.ndarray) -> bool:
    """Whether stored columns are a map of the objects ``ids``: equal lengths, the ids among
    them once each, the others counted as unread, finite places and vectors."""
    n = len(cols["annotation_id"])
    vectors = cols["vectors"]
    return (
        all(len(cols[c]) == n for c in ("image_id", "category_id", "area", "x", "y"))
        and vectors.shape[0] == n
        and vectors.shape[1] > 0  # PCA_DIMS or fewer, but all of them below that many objects
        and n + int(cols["unread"]) == len(ids)
        and len(np.unique(cols["annotation_id"])) == n
        and bool(np.isin(cols["annotation_id"], ids).all())
        and all(np.isfinite(cols[c]).all() for c in ("x", "y", "vectors"))
    )


def _write_map(key: str, m: ObjectMap) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        annotation_id=m.annotation_id,
        image_id=m.image_id,
        category_id=m.category_id,
        area=m.area,
        x=m.x,
        y=m.y,
        vectors=m.vectors,
        unread=np.int64(m.unread),
    )
    atomic_write_bytes(_map_path(key), buf.getvalue())
