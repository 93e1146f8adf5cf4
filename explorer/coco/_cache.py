"""The index cache: one folder per fingerprint under ``<cache>/index/``.

A folder holds one ``.npy`` per column (``image_<column>.npy``, and ``<kind>_<column>.npy`` for
each column its annotation kinds declare), ``meta.json`` (the kinds, categories, findings) and,
when raw text could not be addressed in the JSON itself, ``segmentations.bin``. It is built in a
temporary folder and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

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

FORMAT_VERSION = 4  # 2: box-only annotations (seg_kind 3), RLE counts checked in full;
# 3: the unused-category finding names its categories, image ids written as strings are kept;
# 4: columns stored per annotation kind (<kind>_<column>.npy), the kinds named in meta.json
STALE_BUILD_SECONDS = 600
BLOB = "segmentations.bin"
META = "meta.json"  # written last: a folder that has it is complete


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
        try:
            os.rename(tmp, root / fp)
        except OSError:  # another process won the race: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
        return root / fp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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
        np.save(_column_path(out, "image", k), values)
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
    }
    (out / META).write_text(json.dumps(meta))


def load(folder: Path) -> Built:
    """The index saved in ``folder``, its arrays memory-mapped read-only.

    Raises:
        OSError, ValueError, KeyError: a folder of another format, damaged, or naming a kind
            no longer registered.
    """
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError("cache format changed")
    held = [kinds.get(name) for name in meta["kinds"]]
    image_columns = (*IMAGE_COLUMNS, *(k.image_start for k in held))
    images = {c: _column(folder, "image", c) for c in image_columns}
    tables = {k.name: {c.name: _column(folder, k.name, c.name) for c in k.columns} for k in held}
    return Built(
        images=images,
        tables=tables,
        categories=meta["categories"],
        findings=meta["health"],
        written_image_ids=meta.get("written_image_ids", {}),
        in_source=meta["segmentations"] == "source",
    )


def _column_path(folder: Path, table: str, column: str) -> Path:
    return folder / f"{table}_{column}.npy"


def _column(folder: Path, table: str, column: str) -> np.ndarray:
    return np.load(_column_path(folder, table, column), mmap_mode="r")
