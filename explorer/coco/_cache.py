"""The index cache: one folder per fingerprint under ``<cache>/index/``.

A folder holds one ``.npy`` per column (``image_<column>.npy``, and ``<kind>_<column>.npy`` for
each column its annotation kinds declare), ``meta.json`` (the kinds, categories, findings) and,
when raw text could not be addressed in the JSON itself, ``segmentations.bin``. It is built in a
temporary folder and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from explorer.coco import kinds
from explorer.coco._build import IMAGE_COLUMNS, Built
from explorer.errors import DatasetError
from explorer.paths import open_regular

FORMAT_VERSION = 6  # 2: box-only annotations (seg_kind 3), RLE counts checked in full;
# 3: the unused-category finding names its categories, image ids written as strings are kept;
# 4: columns stored per annotation kind (<kind>_<column>.npy), the kinds named in meta.json;
# 5: meta.json counts the rows of each table (a column of another length is damage);
# 6: num_keypoints and where each annotation's keypoints text lies; categories keep keypoint
# names and skeleton
STALE_BUILD_SECONDS = 600
BLOB = "segmentations.bin"
META = "meta.json"  # written last: a folder that has it is complete
MAX_META_BYTES = 256 << 20  # categories and findings: a few MB even for huge files
IMAGE_TABLE = "image"


class DamagedCache(ValueError):
    """An index cache folder that is not what :func:`write` wrote (its reader builds again)."""


def build_folder(
    path: Path, root: Path, fp: str, use_cache: bool, build: Callable[[Path], Built]
) -> Path:
    """Build the index of ``path`` in a temporary folder under ``root`` with ``build(blob
    path)`` and return where it ended: ``root / fp`` when caching (renamed there atomically),
    else the temporary folder."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{fp}-", dir=root))
    except OSError as e:
        raise DatasetError(f"{path}: cannot write its index under {root} ({e.strerror})") from None
    try:
        try:
            write(tmp, path, build(tmp / BLOB))
        except OSError as e:
            raise DatasetError(f"{path}: could not build its index ({e})") from None
        if not use_cache:
            return tmp
        final = root / fp
        try:
            os.rename(tmp, final)
        except OSError:  # another process won the race (use its copy), or damage is in the way
            if not (final / META).is_file():  # no build leaves a folder without meta.json
                _remove(final)
                with contextlib.suppress(OSError):  # lost a second race: its copy is read
                    os.rename(tmp, final)
            shutil.rmtree(tmp, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    """A file or folder removed, whichever it is."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_builds(root: Path) -> None:
    """Remove the temporary folders of builds killed midway (``.<fingerprint>-*``), once they
    are older than any build runs; a build still running elsewhere is younger and kept."""
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(".") or "-" not in entry.name:
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and (
                now - entry.stat(follow_symlinks=False).st_mtime > STALE_BUILD_SECONDS
            ):
                shutil.rmtree(entry.path, ignore_errors=True)
        except OSError:
            pass


def write(out: Path, path: Path, built: Built) -> None:
    """Save ``built`` into the folder ``out``: every image column, and the columns each of its
    annotation kinds declares."""
    for k, values in built.images.items():
        np.save(_column_path(out, IMAGE_TABLE, k), values)
    for name, table in built.tables.items():
        for c in kinds.get(name).columns:
            np.save(_column_path(out, name, c.name), table[c.name])
    meta = {
        "format": FORMAT_VERSION,
        "source": str(path.resolve()),
        "kinds": list(built.tables),
        "segmentations": "source" if built.in_source else "blob",
        "categories": built.categories,
        "health": built.findings,
        "written_image_ids": built.written_image_ids,
        "rows": {
            IMAGE_TABLE: len(built.images["id"]),
            **{name: _table_rows(name, table) for name, table in built.tables.items()},
        },
    }
    (out / META).write_text(json.dumps(meta))


def load(folder: Path) -> Built:
    """The index saved in ``folder``, its arrays memory-mapped read-only, each checked against
    ``meta.json``: its declared dtype and row shape, and the row count of its table.

    Raises:
        OSError: a file cannot be read.
        DamagedCache (a ValueError): a folder of another format, damaged (a column of another
            length, type or shape, a meta.json of another shape), or naming a kind no longer
            registered.
    """
    meta = _meta(folder)
    rows = meta["rows"]
    try:
        held = [kinds.get(name) for name in meta["kinds"]]
    except KeyError as e:
        raise DamagedCache(f"kind {e} is not registered") from None
    if set(rows) != {IMAGE_TABLE, *meta["kinds"]}:
        raise DamagedCache("meta.json counts other tables than it holds")
    n_images = rows[IMAGE_TABLE]
    images = {c: _column(folder, IMAGE_TABLE, c, (n_images,)) for c in IMAGE_COLUMNS}
    tables = {}
    for k in held:
        n = rows[k.name]
        tables[k.name] = {
            c.name: _column(folder, k.name, c.name, (n, *c.row_shape), c.dtype) for c in k.columns
        }
        start = _column(folder, IMAGE_TABLE, k.image_start, (n_images + 1,), "int64")
        if start[0] != 0 or start[-1] != n or (np.diff(start) < 0).any():
            raise DamagedCache(f"{k.image_start}: not the start of each image's rows")
        images[k.image_start] = start
    return Built(
        images=images,
        tables=tables,
        categories=meta["categories"],
        findings=meta["health"],
        written_image_ids=meta["written_image_ids"],
        in_source=meta["segmentations"] == "source",
    )


def _table_rows(name: str, table: dict[str, np.ndarray]) -> int:
    """The row count of a kind's table (every stored column has it)."""
    return len(table[kinds.get(name).columns[0].name])


def _meta(folder: Path) -> dict:
    """``meta.json``, each field of the type :func:`write` gives it.

    Raises:
        OSError: unreadable. DamagedCache: not JSON, nested too deeply, or of another shape.
    """
    with open_regular(folder / META) as f:
        text = f.read(MAX_META_BYTES + 1)
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError):
        raise DamagedCache(f"{META} is not JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        raise DamagedCache("cache format changed")
    checks = {
        "kinds": lambda v: isinstance(v, list) and all(isinstance(k, str) for k in v),
        "segmentations": lambda v: v in ("source", "blob"),
        "categories": lambda v: isinstance(v, list) and all(_is_category(c) for c in v),
        "health": lambda v: isinstance(v, list) and all(isinstance(f, dict) for f in v),
        "written_image_ids": lambda v: (
            isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
        ),
        "rows": lambda v: (
            isinstance(v, dict) and all(type(n) is int and n >= 0 for n in v.values())
        ),
    }
    wrong = [k for k, fits in checks.items() if k not in meta or not fits(meta[k])]
    if wrong or len(text) > MAX_META_BYTES:
        raise DamagedCache(f"{META}: {', '.join(wrong) or 'too large'} not as written")
    return meta


def _is_category(c: object) -> bool:
    return (
        isinstance(c, dict)
        and type(c.get("id")) is int
        and isinstance(c.get("name"), str)
        and isinstance(c.get("supercategory"), str)
        and _is_list_of(c.get("keypoints", []), lambda n: isinstance(n, str))
        and _is_list_of(c.get("skeleton", []), lambda p: _is_list_of(p, lambda i: type(i) is int))
    )


def _is_list_of(v: object, fits: Callable[[object], bool]) -> bool:
    return isinstance(v, list) and all(map(fits, v))


def _column_path(folder: Path, table: str, column: str) -> Path:
    return folder / f"{table}_{column}.npy"


def _column(
    folder: Path, table: str, column: str, shape: tuple[int, ...], dtype: str | None = None
) -> np.ndarray:
    """One column, memory-mapped, refused (DamagedCache) unless of ``shape`` (and ``dtype``,
    when given: image columns other than the row starts are checked by shape alone)."""
    try:
        values = np.load(_column_path(folder, table, column), mmap_mode="r")
    except EOFError:  # an empty file
        raise DamagedCache(f"{table}_{column}: empty") from None
    except ValueError as e:  # not a .npy file, or one of pickled objects
        raise DamagedCache(f"{table}_{column}: {e}") from None
    if values.shape != shape or (dtype is not None and values.dtype != np.dtype(dtype)):
        raise DamagedCache(f"{table}_{column}: {values.dtype}{values.shape}, not {shape}")
    if values.dtype.hasobject:
        raise DamagedCache(f"{table}_{column}: objects")
    return values
