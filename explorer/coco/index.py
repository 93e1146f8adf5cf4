"""The COCO index: columnar, cached on disk, near-instant to reopen.

``open_index(path)`` parses a COCO instances JSON once (``_build``) and caches the columns
as ``.npy`` files plus one blob of raw segmentation text under ``<cache>/index/<fingerprint>/``
(``_cache``). A reopen memory-maps them. The fingerprint covers the file's real path, size and
mtime, so a changed file is re-read. Which columns there are is the annotation kinds'
declaration (``annotation_kind``, ``kinds``): one table per kind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from explorer.coco import _build, _cache, health, kinds
from explorer.coco.images import displayed_size, resolve_image_path
from explorer.coco.instances import INSTANCES
from explorer.coco.keypoints import keypoint_values
from explorer.errors import DatasetError, ExplorerError
from explorer.paths import cache_dir
from explorer.types import Category


class _RawText:
    """Reads raw JSON text (segmentations, keypoints) by (offset, length) from the source JSON
    or a cache blob.

    The user's JSON is read with ``pread``, never memory-mapped: a file rewritten in place
    while mapped would kill the process with SIGBUS. A file that changed since indexing is
    reported instead of read: ``stamp`` is the file's identity when the index was keyed, which
    the bytes the index was built from had (``_build.read_file`` checks), never one taken
    after them.
    """

    def __init__(self, path: Path, stamp: _build.Stamp) -> None:
        self.path, self.stamp = path, stamp

    def read(self, offset: int, length: int) -> bytes:
        return self.read_ranges(np.array([offset]), np.array([offset + length]))[0]

    def read_ranges(self, starts: np.ndarray, stops: np.ndarray) -> list[bytes]:
        """The bytes of each range ``[starts[i], stops[i])``, the file opened and checked once."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise DatasetError(f"{self.path}: cannot read ({e.strerror})") from None
        try:
            if _build.stamp_of(os.fstat(fd)) != self.stamp:
                raise _build.changed(self.path)
            return [
                os.pread(fd, b - a, a) for a, b in zip(starts.tolist(), stops.tolist(), strict=True)
            ]
        finally:
            os.close(fd)


@dataclass(frozen=True)
class CocoIndex:
    """Columnar view of one COCO instances file. Arrays are read-only.

    Attributes:
        path: the annotation file.
        fingerprint: a short hash of (real path, size, mtime, format version).
        images: columns ``id``, ``width``, ``height``, ``file_name`` and ``ann_start`` (the
            annotations of image row ``r`` are
            ``annotations["by_image"][ann_start[r]:ann_start[r+1]]``).
        tables: one table of columns per annotation kind, by the kind's name; each holds the
            columns its kind declares (see ``explorer.coco.kinds``).
        annotations: the instances kind's table (``tables["instances"]``): columns ``id``,
            ``image_id``, ``image_row``, ``category_id``, ``category_row``, ``iscrowd`` (bool),
            ``area``, ``bbox`` (n x 4, x y w h), ``seg_offset``/``seg_length``/``seg_kind``
            (0 polygon, 1 RLE, 2 uncompressed RLE, 3 box only: no segmentation, or an image of
            unknown size), ``num_keypoints`` (int32; -1: not given), ``kp_offset``/``kp_length``
            (where its raw ``keypoints`` text lies; none given: length 0; see :meth:`keypoints`) and
            ``by_image`` (annotation rows sorted by image row).
        categories: ``{"id", "name", "supercategory"}``, and a keypoint category's
            ``keypoints`` (names) and ``skeleton`` (pairs of 1-based keypoint numbers)
            (:class:`explorer.types.Category`), in file order.
        health: findings (see ``explorer.coco.health``).
        written_image_ids: image ids written as strings that are not numbers, as written, by
            the number they were given (as a string); see :meth:`image_label`.
        load_seconds: how long opening took; ``from_cache`` whether the disk cache was used.
    """

    path: Path
    fingerprint: str
    images: dict[str, np.ndarray]
    tables: dict[str, dict[str, np.ndarray]]
    categories: list[Category]
    health: list[health.Finding]
    load_seconds: float
    from_cache: bool
    _raw_text: _RawText = field(repr=False)
    written_image_ids: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def annotations(self) -> dict[str, np.ndarray]:
        return self.tables[INSTANCES.name]

    @property
    def num_images(self) -> int:
        return len(self.images["id"])

    @property
    def num_annotations(self) -> int:
        return len(self.annotations["id"])

    @property
    def category_ids(self) -> np.ndarray:
        return np.array([c["id"] for c in self.categories], dtype=np.int64)

    def image_row(self, image_id: int) -> int:
        """Row of ``image_id`` in ``images``; raises ``KeyError`` when absent."""
        rows = np.flatnonzero(self.images["id"] == int(image_id))
        if not len(rows):
            raise KeyError(f"no image with id {image_id} in {self.path.name}")
        return int(rows[0])

    def image_label(self, image_id: int) -> str:
        """An image id as the file wrote it: a string id that is not a number was given a
        number (see ``_records.string_id``), and is shown as written."""
        return self.written_image_ids.get(str(int(image_id)), str(int(image_id)))

    def annotation_rows(self, image_row: int) -> np.ndarray:
        """Rows of the annotations of one image (by image row, in file order)."""
        start, stop = self.images["ann_start"][image_row : image_row + 2]
        return self.annotations["by_image"][start:stop]

    def category_row(self, category_id: int) -> int:
        rows = np.flatnonzero(self.category_ids == int(category_id))
        if not len(rows):
            raise KeyError(f"no category with id {category_id} in {self.path.name}")
        return int(rows[0])

    def segmentation(self, ann_row: int) -> bytes:
        """The raw JSON text of one annotation's segmentation."""
        return self._raw_text.read(
            int(self.annotations["seg_offset"][ann_row]),
            int(self.annotations["seg_length"][ann_row]),
        )

    def keypoints(self, ann_rows: np.ndarray, k: int | None = None) -> np.ndarray:
        """The keypoints of annotation rows ``ann_rows``, an (n, 3k) float64 array (x, y, v per
        keypoint, as the file writes them), decoded in one go.

        ``k``: keypoints per annotation (a category's ``len(keypoints)``); None: the most common
        in these rows, 0 when none has keypoints. A row is NaN where the annotation has none,
        or a value that is not a list of 3k numbers: ``np.isnan(values).any(axis=1)`` tells
        which (JSON has no NaN). Raises DatasetError when the file changed since it was opened.
        """
        rows = np.asarray(ann_rows)
        if rows.dtype.kind not in "iu":
            raise TypeError(f"ann_rows: integer annotation rows, not {rows.dtype}")
        table = self.annotations
        return keypoint_values(
            self._raw_text.read_ranges, table["kp_offset"][rows], table["kp_length"][rows], k
        )


def fingerprint(path: Path) -> str:
    """Hash of the file's real path, size and mtime (and the cache format)."""
    return _fingerprint(path, _build.stamp_of(path.stat()))


def _fingerprint(path: Path, stamp: _build.Stamp) -> str:
    key = f"{path.resolve()}|{stamp[0]}|{stamp[1]}|v{_cache.FORMAT_VERSION}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class _Opened:
    """The annotation file and its stamp when it was opened: what the index's key names, what
    its build must read and what reads of its segmentation text check."""

    path: Path
    stamp: _build.Stamp


def open_index(
    path: str | os.PathLike,
    *,
    images: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> CocoIndex:
    """Open a COCO instances JSON as a :class:`CocoIndex`, using the disk cache when valid.

    When the file leaves some image sizes out and ``images`` (the image folder) is given, those
    sizes are read from the image files' headers, so their annotations keep their masks; that
    index is cached under its own key (the file's and the folder's). Without the folder such
    images are kept with an unknown size (0) and their annotations are boxes only.

    Raises:
        DatasetError: the file is missing, unreadable, not JSON or not COCO, or changed while
            it was opened.
    """
    t0 = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise DatasetError(
            f"{path}: file not found" if not path.exists() else f"{path}: is not a file"
        )
    try:
        opened = _Opened(path, _build.stamp_of(path.stat()))
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    index = _open(opened, _fingerprint(path, opened.stamp), None, use_cache, t0)
    if images is None or not (index.images["width"] == 0).any():
        return index
    folder = os.path.realpath(images)
    fp = hashlib.sha1(f"{index.fingerprint}|{folder}".encode()).hexdigest()[:20]
    return _open(opened, fp, _size_reader(Path(folder)), use_cache, t0)


def _size_reader(folder: Path) -> _build.SizeOf:
    def size_of(file_name: str) -> tuple[int, int] | None:
        try:
            return displayed_size(resolve_image_path(folder, file_name))
        except ExplorerError:  # missing, unsafe or not an image: the size stays unknown
            return None

    return size_of


def _open(
    opened: _Opened, fp: str, size_of: _build.SizeOf | None, use_cache: bool, t0: float
) -> CocoIndex:
    path = opened.path
    try:
        root = cache_dir("index")
    except OSError as e:
        raise DatasetError(
            f"{path}: cannot create the index cache ({e.strerror}); set EXPLORER_CACHE"
        ) from None
    final = root / fp
    from_cache = use_cache and (final / _cache.META).is_file()
    if not from_cache:
        _cache.remove_stale_builds(root)
        kind = kinds.get(INSTANCES.name)  # the one kind an annotation file is read as, for now
        final = _cache.build_folder(
            path,
            root,
            fp,
            use_cache,
            lambda blob: _build.build(path, kind, blob, size_of, opened.stamp),
        )
    try:
        return _load(opened, fp, final, t0, from_cache)
    except (OSError, ValueError, KeyError) as e:
        if not from_cache:
            raise DatasetError(f"{path}: could not read its index cache ({e})") from None
        shutil.rmtree(final, ignore_errors=True)  # a damaged cache: rebuild once
        return _open(opened, fp, size_of, use_cache, t0)
    finally:
        # without the cache the arrays stay mapped and no folder is kept
        if not use_cache and not (final / _cache.BLOB).exists():
            shutil.rmtree(final, ignore_errors=True)


def _load(opened: _Opened, fp: str, folder: Path, t0: float, from_cache: bool) -> CocoIndex:
    stored = _cache.load(folder)
    # the source's stamp when it was opened (what the index was built from), not a later one
    text = (
        _RawText(opened.path, opened.stamp)
        if stored.in_source
        else _RawText(folder / _cache.BLOB, _build.stamp_of((folder / _cache.BLOB).stat()))
    )
    return CocoIndex(
        path=opened.path,
        fingerprint=fp,
        images=stored.images,
        tables=stored.tables,
        categories=stored.categories,
        health=stored.findings,
        load_seconds=time.perf_counter() - t0,
        from_cache=from_cache,
        _raw_text=text,
        written_image_ids=stored.written_image_ids,
    )
