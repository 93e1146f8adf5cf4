"""Where runtime files live, and the one way files are written: atomically.

``cache_dir`` is the one cache directory resolver: derived data only, safe to delete at any
time. ``work_dir`` is the one resolver of the user's own work (trained runs, review decisions),
which nothing can derive again and which is kept out of the cache for that reason.

``atomic_file`` writes under a temporary name in the same folder and renames on success, so a
crash, a kill or a full disk never leaves half a file under its final name (readers see the old
file or the new one). A full disk (or quota, or read-only file system) while writing becomes
:class:`~explorer.errors.StorageError` naming the folder, and so does a folder that refuses the
write; ``storage_guard`` does the same for writers that cannot go through ``atomic_file``.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from explorer.errors import ExplorerError, StorageError, storage_error

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the cache directory.

    The cache directory is ``$EXPLORER_CACHE`` when set, else ``cache/`` at the repository root.
    Everything in it is derived data, safe to delete at any time (the user's own work lives in
    :func:`work_dir`).
    """
    path = _cache_root().joinpath(*parts)
    with storage_guard(path.parent):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _cache_root() -> Path:
    return Path(os.environ.get("EXPLORER_CACHE") or REPO_ROOT / "cache")


# what older versions kept in the cache although it is the user's work: moved on first use
WORK_KINDS = ("runs", "reviews")


def work_dir(kind: str) -> Path:
    """Return (and create) the folder of one kind of the user's work (:data:`WORK_KINDS`):
    trained runs, review decisions. Unlike the cache, not safe to delete.

    The work directory is ``$EXPLORER_WORK`` when set, else ``work/`` beside the cache
    directory (so ``work/`` at the repository root by default). What an older version kept under
    ``<cache>/<kind>/`` is moved here the first time this process asks for it: nothing is lost.
    """
    if kind not in WORK_KINDS:
        raise ValueError(f"not a kind of work: {kind!r}")
    root = Path(os.environ.get("EXPLORER_WORK") or _cache_root().parent / "work")
    path = root / kind
    with storage_guard(root):
        path.mkdir(parents=True, exist_ok=True)
    if (str(path), kind) not in _MIGRATED:
        _MIGRATED.add((str(path), kind))
        move_legacy_work(_cache_root() / kind, path)
    return path


_MIGRATED: set[tuple[str, str]] = set()


def move_legacy_work(legacy: Path, path: Path) -> int:
    """Move each entry of ``legacy`` (an old ``<cache>/<kind>/`` folder) into ``path`` unless a
    namesake is there already; the emptied folder goes. An entry that cannot be moved stays
    where it was (never half-moved: across file systems it is copied under a temporary name,
    renamed into place, and only then removed). Returns how many were moved."""
    try:
        if os.path.samefile(legacy, path):  # the work folder set to the cache folder
            return 0
        entries = [e for e in os.scandir(legacy) if not e.name.startswith(".")]
    except OSError:  # none (the usual case), or unreadable: nothing to move
        return 0
    moved = 0
    for entry in entries:
        target = path / entry.name
        if os.path.lexists(target):
            continue
        try:
            _move(Path(entry.path), target)
            moved += 1
        except OSError:
            continue  # left where it was, moved by the next process that tries
    with contextlib.suppress(OSError):
        legacy.rmdir()  # only when empty
    return moved


def _move(source: Path, target: Path) -> None:
    import shutil

    try:
        os.rename(source, target)
        return
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    copy = target.with_name(f".{target.name}.{os.getpid()}.moving")
    try:
        if source.is_dir():
            shutil.copytree(source, copy, symlinks=True)
        else:
            shutil.copy2(source, copy)
        os.rename(copy, target)
    except BaseException:
        _remove(copy)
        raise
    _remove(source)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def storage_guard(folder: Path) -> Iterator[None]:
    """Turn a full disk (or quota, or read-only file system) met in the block into a
    :class:`~explorer.errors.StorageError` naming ``folder``, and a refused permission into one
    naming the file; other errors pass unchanged."""
    try:
        yield
    except OSError as e:
        failure = storage_error(folder, e)
        if failure is None and e.errno in _NOT_PERMITTED:
            failure = StorageError(f"{e.filename or folder}: cannot be written (permission denied)")
        if failure is None:
            raise
        raise failure from None


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
def atomic_file(path: Path, *, new: bool = False) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: put into place only when the block succeeds.

    With ``new``, an existing ``path`` is never replaced: the finished file is hard-linked to its
    name, which fails when the name is taken, even by a writer that took it meanwhile (no
    check-then-write race).

    The temporary is removed whatever happens, and a failure to remove it (a read-only file
    system refuses even that) never hides the error that stopped the write.

    Raises:
        StorageError: the disk filled up, or the folder cannot be written (read-only, no
            permission, a folder or a file in the way); ``path`` is unchanged.
        ExplorerError: with ``new``, ``path`` exists.
    """
    path = Path(path)
    tmp = temporary_path(path)
    remove_stale_temporaries(path.parent, path.name)
    try:
        try:
            f = open(tmp, "wb")
        except OSError as e:
            raise _told(path, e) from None
        watched = _Watched(f)
        try:
            with f:
                yield cast(BinaryIO, watched)
        except Exception as e:  # the block's own errors keep their type, but a full disk
            full = storage_error(path.parent, e) or write_error(path, watched.failure)
            if full is None:
                raise
            raise full from None
        try:
            _put_in_place(tmp, path, new)
        except OSError as e:
            raise _told(path, e) from None
    finally:
        with contextlib.suppress(OSError):  # never over the error that stopped the write
            tmp.unlink(missing_ok=True)


def _told(path: Path, error: OSError) -> Exception:
    return write_error(path, error) or error


def _put_in_place(tmp: Path, path: Path, new: bool) -> None:
    if not new:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # EEXIST when the name is taken, whoever took it
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        # a file system without hard links: claim the name exclusively, then replace the claim
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, path)


_NOT_PERMITTED = {errno.EACCES, errno.EPERM}
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV}

# why a write failed -> what the user is told (beyond storage_error's full or read-only disk)
_UNWRITABLE = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "a folder has that name",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.ENOENT: "its folder does not exist",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "too many symbolic links",
}


def write_error(path: Path, error: BaseException | None) -> ExplorerError | None:
    """The one-line error of a write to ``path`` that failed with ``error``: a full disk (or
    quota, or read-only file system) names the folder, a folder that refuses the write or a
    name already taken names ``path``; None for any other error (a bug, kept as it is)."""
    full = storage_error(Path(path).parent, error)
    if full is not None or not isinstance(error, OSError):
        return full
    if error.errno == errno.EEXIST:
        return ExplorerError(f"{path}: already exists; choose a new name")
    if error.errno in _UNWRITABLE:
        return StorageError(f"{path}: cannot be written ({_UNWRITABLE[error.errno]})")
    return None


def temporary_path(path: Path) -> Path:
    """The name ``path`` is written under before its rename: hidden, beside it, holding this
    process's id, so that :func:`remove_stale_temporaries` knows when its writer is gone, and a
    random part, so that two threads writing one file never share a temporary."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)(?:-[0-9a-f]+)?\.tmp")


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
        try:
            p.unlink(missing_ok=True)
        except OSError:  # a read-only folder: the write that follows says why
            continue
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
