"""Real COCO in one call: the split's annotations and images from the official host (or a
mirror), resumable, checked, and never half-written under a final name.

Layout written under ``dest`` (the one the app opens)::

    dest/annotations/instances_<split>.json        exactly the images downloaded
    dest/annotations/annotations_trainval2017.zip  kept: a rerun or another split needs no fetch
    dest/<split>/<file_name>                       one file per image

The CLI (``python -m explorer download coco``) and the app run the same :func:`download_coco`.
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from explorer.coco.download.annotations import fetch_instances
from explorer.coco.download.http import Client, HostUnreachable, RetryPolicy
from explorer.coco.download.images import fetch_images
from explorer.coco.download.progress import Progress, Tally
from explorer.coco.download.subset import select
from explorer.errors import Cancelled, ExplorerError
from explorer.paths import atomic_write_bytes, storage_guard
from explorer.types import COCO_HOST, COCO_SPLITS, CocoSplit

__all__ = [
    "Cancelled",
    "DownloadRequest",
    "DownloadResult",
    "DownloadRun",
    "HostUnreachable",
    "Progress",
    "RetryPolicy",
    "download_coco",
    "open_command",
]


@dataclass(frozen=True)
class DownloadRequest:
    """What to download: a COCO split, or a subset of it, into ``dest``.

    Attributes:
        dest: the dataset's root folder (created).
        split: ``val2017`` or ``train2017``.
        images: False writes the annotation file alone.
        categories: keep only images with an annotation of one of these category names.
        max_images: at most this many images (a seeded, repeatable choice).
    """

    dest: str | Path
    split: CocoSplit = "val2017"
    images: bool = True
    categories: tuple[str, ...] | None = None
    max_images: int | None = None


@dataclass(frozen=True)
class DownloadRun:
    """How a download runs: the host, files fetched at once, retries, who hears its progress
    and what stops it.

    Attributes:
        base_url: the host (a mirror, or a local stand-in in tests).
        workers: images fetched at once.
        policy: retries and timeouts (default :class:`RetryPolicy`).
        on_progress: called with each :class:`Progress` (from worker threads).
        cancel: set it to stop; finished files are kept.
    """

    base_url: str = COCO_HOST
    workers: int = 16
    policy: RetryPolicy | None = None
    on_progress: Callable[[Progress], None] | None = None
    cancel: threading.Event | None = None


@dataclass(frozen=True)
class DownloadResult:
    """What a download left on disk and what it took.

    Attributes:
        annotations: the written ``instances_<split>.json``.
        images: the image folder, or None when no images were asked for.
        images_total: images the annotation file describes (records: two naming one file
            count twice, see ``shared_names``).
        fetched: images fetched by this run (the others were there already).
        bytes_fetched: bytes received by this run (annotation zip included).
        seconds: wall time of the run.
        shared_names: image records naming a file that an earlier record names too (from the
            same URL): one file, fetched once.
    """

    annotations: Path
    images: Path | None
    images_total: int
    fetched: int
    bytes_fetched: int
    seconds: float
    shared_names: int = 0


def download_coco(request: DownloadRequest, run: DownloadRun = DownloadRun()) -> DownloadResult:
    """Download what ``request`` asks for, as ``run`` says; a rerun fetches only what is
    missing.

    Raises:
        ExplorerError: bad arguments, an unknown category (the valid ones listed), the host
            unreachable, failing for good or too slow, a corrupt zip or one that would expand
            too far, an instances file that is not COCO (nested too deeply, a file name too
            long, one file name with two URLs), a full disk (``StorageError``).
    """
    split, base_url = request.split, run.base_url
    if split not in COCO_SPLITS:
        raise ExplorerError(f"--split {split}: choose one of {', '.join(COCO_SPLITS)}")
    if not base_url.startswith(("http://", "https://")):
        raise ExplorerError(f"--base-url {base_url}: not an http:// or https:// URL")
    started, dest = time.monotonic(), Path(request.dest).expanduser()
    client = Client(run.policy or RetryPolicy(), run.workers, run.cancel)
    tally = Tally(run.on_progress)
    data = fetch_instances(client, base_url, dest / "annotations", split, tally)
    chosen = select(data, split, request.categories, request.max_images)
    folder = dest / split if request.images else None
    if folder is not None:
        fetch_images(client, base_url, chosen.images, folder, tally)
    annotations = dest / "annotations" / f"instances_{split}.json"
    _write_if_changed(annotations, chosen.document)
    fetched = tally.now.files_total - tally.now.skipped if folder else 0
    tally.finish()
    return DownloadResult(
        annotations,
        folder,
        len(chosen.images) + chosen.shared_names,
        fetched,
        tally.fetched_bytes,
        time.monotonic() - started,
        chosen.shared_names,
    )


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write ``data`` unless the file holds it already: rewriting would change its mtime, and
    with it the index cache's key, for nothing."""
    with storage_guard(path.parent):
        if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
            return
    atomic_write_bytes(path, data)


def open_command(result: DownloadResult) -> str:
    """The command line that opens the result in the app."""
    line = f"streamlit run app.py -- --coco {shlex.quote(str(result.annotations))}"
    if result.images is not None:
        line += f" --images {shlex.quote(str(result.images))}"
    return line
