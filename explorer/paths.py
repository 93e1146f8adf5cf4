"""Where runtime files live, and the one way files are written: atomically.

``cache_dir`` is the one cache directory resolver. ``atomic_file`` writes under a temporary name
in the same folder and renames on success, so a crash, a kill or a full disk never leaves half a
file under its final name (readers see the old file or the new one). A full disk (or quota, or
read-only file system) while writing becomes :class:`~explorer.errors.StorageError` naming the
folder; ``storage_guard`` does the same for writers that cannot go through ``atomic_file``.
"""

from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from explorer.errors import ExplorerError, storage_error

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the cache directory.

    The cache directory is ``$EXPLORER_CACHE`` when set, else ``cache/`` at the repository root.
    Everything in it is safe to delete at any time.
    """
    root = Path(os.environ.get("EXPLORER_CACHE") or REPO_ROOT / "cache")
    path = root.joinpath(*parts)
    with storage_guard(path.parent):
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def storage_guard(folder: Path) -> Iterator[None]:
    """Turn a full disk (or quota, or read-only file system) met in the block into a
    :class:`~explorer.errors.StorageError` naming ``folder``; other errors pass unchanged."""
    try:
        yield
    except OSError as e:
        full = storage_error(folder, e)
        if full is None:
            raise
        raise full from None


class _Watched:
    """A file whose failed writes are remembered: torch.save reports a failed write as a
    RuntimeError ("unexpected pos ..."), which says nothing of the full disk behind it."""

    def __init__(self, f: BinaryIO):
        self._f = f
        self.failure: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._f.write(data)
        except OSError as e:
            self.failure = e
            raise

    def __getattr__(self, name: str):
        return getattr(self._f, name)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: renamed into place only when the block succeeds.

    Raises:
        StorageError: the disk filled up (the temporary is removed; ``path`` is unchanged).
    """
    path = Path(path)
    tmp = temporary_path(path)
    remove_stale_temporaries(path.parent, path.name)
    watched: _Watched | None = None
    try:
        with open(tmp, "wb") as f:
            watched = _Watched(f)
            yield cast(BinaryIO, watched)
        os.replace(tmp, path)
    except Exception as e:
        full = storage_error(path.parent, e) or storage_error(
            path.parent, watched.failure if watched else None
        )
        if full is None:
            raise
        raise full from None
    finally:
        tmp.unlink(missing_ok=True)


def temporary_path(path: Path) -> Path:
    """The name ``path`` is written under before its rename: hidden, beside it, and holding this
    process's id, so that :func:`remove_stale_temporaries` knows when its writer is gone."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.tmp")


def remove_stale_temporaries(folder: Path, name: str | None = None) -> int:
    """Remove the temporaries ``atomic_file`` left in ``folder`` (for ``name`` only, when given)
    when killed: those whose process is gone. Returns how many were removed."""
    removed = 0
    try:
        candidates = list(folder.glob(f".{glob.escape(name) if name else '*'}.*.tmp"))
    except OSError:
        return 0
    for p in candidates:
        m = _TEMPORARY.fullmatch(p.name)
        if m is None or (name is not None and m["name"] != name) or _alive(int(m["pid"])):
            continue
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process (or not a pid): leave its file alone
    return True


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


class NotARegularFile(OSError):
    """A path from data names a pipe, a device or a socket, not a file."""


TABLE_SUFFIXES = (".parquet", ".csv", ".jsonl")


def check_table_path(path: str | os.PathLike) -> Path:
    """``path`` when :func:`atomic_write_table` can write it (checked before long work).

    Raises:
        ExplorerError: another suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ExplorerError(f"{path}: write one of {', '.join(TABLE_SUFFIXES)}")
    return path


def atomic_write_table(frame, path: Path) -> None:
    """A pandas DataFrame as Parquet, CSV or JSON lines (by ``path``'s suffix), written
    atomically (its folder created).

    Raises:
        ExplorerError: another suffix.
    """
    import io

    path = check_table_path(path)
    suffix = path.suffix.lower()
    buf = io.BytesIO()
    if suffix == ".csv":
        frame.to_csv(buf, index=False)
    elif suffix == ".jsonl":
        frame.to_json(buf, orient="records", lines=True)
    else:
        frame.to_parquet(buf, index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def open_regular(path: str | os.PathLike) -> io.BufferedReader:
    """The file opened for binary reading, refused unless it is a regular file.

    Opened non-blocking and checked with ``fstat`` on the open descriptor: opening a FIFO for
    reading blocks until a writer comes (forever), and a check before opening could be raced.

    Raises:
        NotARegularFile: a pipe, device or socket.
        OSError: as ``open`` (FileNotFoundError, IsADirectoryError, PermissionError, ...).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(f"{path}: not a regular file (a pipe, device or socket)")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")
