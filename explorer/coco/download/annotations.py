"""COCO's annotation zip: downloaded once (resumed with Range after a failure or a kill),
checked, kept beside the annotations, and read for one split's instances file.

The zip reaches its final name only after every member's CRC has been checked; a zip that later
reads corrupt (a bad disk) is deleted and fetched again once.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

from explorer.coco.download.http import Client, fetch_resumable
from explorer.coco.download.progress import Tally
from explorer.errors import DatasetError, DownloadError
from explorer.paths import storage_guard

ZIP_PATH = "annotations/annotations_trainval2017.zip"
_CORRUPT = (zipfile.BadZipFile, zlib.error, EOFError)


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
        DownloadError: the zip arrived corrupt twice, or the host failed.
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


def _read_member(path: Path, split: str) -> bytes:
    """The split's member, its CRC checked again as it is read (zipfile raises BadZipFile)."""
    with zipfile.ZipFile(path) as z:
        try:
            return z.read(member_name(split))
        except KeyError:
            raise DatasetError(f"{path}: holds no {member_name(split)}") from None
