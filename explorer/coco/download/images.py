"""Images fetched one URL each by a pool of threads.

A file under its final name is complete (it got there by rename after every announced byte
arrived), so "already downloaded" is a directory listing, with no request to the host. That
also makes a run killed at any moment safe: the rerun skips what is there and removes the
temporaries the dead run left.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from pathlib import Path

from explorer.coco.download.http import Client, FileFailed, fetch_file
from explorer.coco.download.progress import Tally
from explorer.coco.download.subset import ImageEntry
from explorer.errors import DownloadError
from explorer.paths import remove_stale_temporaries, storage_guard


def present(folder: Path) -> set[str]:
    """Names of the non-empty regular files in ``folder`` (one listing, no per-file stat call
    beyond what the listing caches)."""
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if e.is_file(follow_symlinks=False) and e.stat().st_size}
    except FileNotFoundError:
        return set()


def fetch_images(
    client: Client,
    base_url: str,
    entries: tuple[ImageEntry, ...],
    folder: Path,
    tally: Tally,
) -> None:
    """Download every image of ``entries`` missing from ``folder``.

    Args:
        client: the pool, retry policy and cancel flag; one thread fetches per connection it
            keeps (``client.workers``).
        base_url: the host the images' paths are joined to.
        entries: the images wanted.
        folder: the split's image folder (created).
        tally: counts images and bytes.

    Raises:
        DownloadError: some images failed for good (the others are kept; a rerun fetches the
            rest), or the host cannot be reached.
        StorageError: the disk is full.
        Cancelled: the cancel flag was set (finished images are kept).
    """
    with storage_guard(folder):
        folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    have = present(folder)
    todo = [e for e in entries if e.file_name not in have]
    tally.begin("images", len(entries), skipped=len(entries) - len(todo))
    base = base_url.rstrip("/")

    def one(e: ImageEntry) -> None:
        fetch_file(client, base + e.url_path, folder / e.file_name, tally.add_bytes)
        tally.file_done()

    with ThreadPoolExecutor(client.workers, thread_name_prefix="download") as pool:
        futures = [pool.submit(one, e) for e in todo]
        failed = _wait_all(client, futures)
    if failed:
        raise DownloadError(
            f"{len(failed)} of {len(todo)} images failed, e.g. {failed[0]}; "
            "a rerun fetches only the missing ones"
        )


def _wait_all(client: Client, futures: list[Future]) -> list[FileFailed]:
    """Wait for every future; the files that failed alone. Anything else (the host is gone, the
    disk is full, Ctrl-C) stops the other workers at their next chunk and is raised."""
    try:
        pending = set(futures)
        while pending:
            # a timeout keeps the main thread awake for Ctrl-C
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            for f in done:
                e = f.exception()
                if e is not None and not isinstance(e, FileFailed):
                    raise e
        # every other exception was raised above: what is left failed alone
        errors = [f.exception() for f in futures]
        return [e for e in errors if isinstance(e, FileFailed)]
    except BaseException:
        client.cancel.set()
        for f in futures:
            f.cancel()
        raise
