"""COCO's annotation zip: downloaded once (resumed with Range after a failure or a kill),
checked, kept beside the annotations, and read for one split's instances file.

The zip reaches its final name only after every member's CRC has been checked; a zip that later
reads corrupt (a bad disk) is deleted and fetched again once. Before anything is decompressed,
the sizes its directory declares are held to :class:`ZipLimits` (a zip bomb is refused in one
line and dropped); those sizes bound what is read, since :mod:`zipfile` stops a member at its
declared size (and the CRC then fails).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from explorer.coco.download.http import Client, fetch_resumable
from explorer.coco.download.progress import Tally
from explorer.errors import DatasetError, DownloadError
from explorer.paths import storage_guard

ZIP_PATH = "annotations/annotations_trainval2017.zip"
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError)


@dataclass(frozen=True)
class ZipLimits:
    """What the annotation zip's members may expand to.

    COCO's own zip (241 MB) holds six JSON files, 815 MB in all, the largest (instances of
    train2017) 448 MB, each at most 6 times its compressed size.

    Attributes:
        max_bytes: the largest member, uncompressed (it is held in memory to be read).
        max_total: every member together, uncompressed (the CRC check reads them all).
        max_ratio: the most a member over ``ratio_from`` bytes may expand, times its
            compressed size (text compresses 5 to 20 times; a bomb 1000).
        ratio_from: members smaller than this are not held to ``max_ratio``: they cost nothing.
    """

    max_bytes: int = 1 << 30
    max_total: int = 2 << 30
    max_ratio: float = 100.0
    ratio_from: int = 1 << 20


def member_name(split: str) -> str:
    """The split's instances file inside the annotation zip."""
    return f"annotations/instances_{split}.json"


def fetch_instances(client: Client, base_url: str, folder: Path, split: str, tally: Tally) -> bytes:
    """The bytes of ``instances_<split>.json``, from the zip kept in ``folder`` or from
    ``base_url`` (fetched into ``folder`` first).

    Args:
        client: the pool, retry policy and cancel flag.
        base_url: the host, e.g. ``http://images.cocodataset.org``.
        folder: where the zip is kept (the destination's ``annotations/``).
        split: ``val2017`` or ``train2017``.
        tally: counts the zip's bytes.

    Raises:
        DownloadError: the zip arrived corrupt twice, the host failed, or the zip would expand
            beyond :class:`ZipLimits` (it is dropped).
        DatasetError: the zip holds no instances file for ``split``.
    """
    url = f"{base_url.rstrip('/')}/{ZIP_PATH}"
    kept = folder / Path(ZIP_PATH).name
    problem = ""
    for _ in range(2):
        if not kept.exists():
            problem = _fetch_checked(client, url, kept, tally)
            if problem:
                continue
        try:
            _refuse_beyond_limits(kept, kept)  # a zip kept by a run before the limits
            return _read_member(kept, split)
        except _CORRUPT as e:
            problem = f"{kept} reads corrupt ({e})"
            kept.unlink()
    raise DownloadError(f"{url}: the zip arrived corrupt twice: {problem}")


def _fetch_checked(client: Client, url: str, kept: Path, tally: Tally) -> str:
    """Fetch the zip to ``kept`` when every CRC holds; else drop it and say what was wrong."""
    part = kept.with_name(f".{kept.name}.part")  # survives a kill: the rerun resumes it
    with storage_guard(kept.parent):
        kept.parent.mkdir(parents=True, exist_ok=True)
    tally.begin("annotations")
    fetch_resumable(client, url, part, tally.sized, tally.add_bytes)
    _refuse_beyond_limits(part, url)
    problem = check_zip(part)
    if problem:
        part.unlink()
        return problem
    os.replace(part, kept)
    return ""


def check_zip(path: Path) -> str:
    """What is wrong with the zip at ``path`` (a member whose CRC fails, a broken directory), or
    "" when every member reads back intact."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except _CORRUPT as e:
        return f"{path.name}: {e}"
    return f"{path.name}: {bad} fails its CRC check" if bad else ""


def zip_refusal(path: Path, limits: ZipLimits = ZipLimits()) -> str:
    """Why the zip at ``path`` would expand beyond ``limits``, from the sizes its directory
    declares (nothing is decompressed), or "" when it stays within them."""
    with zipfile.ZipFile(path) as z:
        members = z.infolist()
    for m in members:
        if m.file_size > limits.max_bytes:
            return (
                f"refused: {m.filename} would expand to {m.file_size:,} bytes, more than the "
                f"{limits.max_bytes:,} bytes allowed"
            )
        ratio = m.file_size / max(1, m.compress_size)
        if m.file_size >= limits.ratio_from and ratio > limits.max_ratio:
            return (
                f"refused: {m.filename} would expand to {m.file_size:,} bytes, {ratio:,.0f} "
                f"times its compressed size (at most {limits.max_ratio:g} times allowed)"
            )
    total = sum(m.file_size for m in members)
    if total > limits.max_total:
        return (
            f"refused: its members would expand to {total:,} bytes in all, more than the "
            f"{limits.max_total:,} bytes allowed"
        )
    return ""


def _refuse_beyond_limits(path: Path, source: object) -> None:
    """Drop the zip at ``path`` and raise DownloadError naming ``source`` when it would expand
    beyond the limits: fetching it again would bring the same bomb. A zip with no readable
    directory passes, for the CRC check to call corrupt."""
    try:
        problem = zip_refusal(path)
    except _CORRUPT:
        return
    if problem:
        path.unlink()
        raise DownloadError(f"{source}: {problem}")


def _read_member(path: Path, split: str) -> bytes:
    """The split's member, its CRC checked again as it is read (zipfile raises BadZipFile)."""
    with zipfile.ZipFile(path) as z:
        try:
            return z.read(member_name(split))
        except KeyError:
            raise DatasetError(f"{path}: holds no {member_name(split)}") from None
