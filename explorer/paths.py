"""Where runtime files live, and the one way files are written: atomically.

``cache_dir`` is the one cache directory resolver. ``atomic_file`` writes under a temporary name
in the same folder and renames on success, so a crash, a kill or a full disk never leaves half a
file under its final name (readers see the old file or the new one).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

REPO_ROOT = Path(__file__).resolve().parents[1]


def cache_dir(*parts: str) -> Path:
    """Return (and create) a folder under the cache directory.

    The cache directory is ``$EXPLORER_CACHE`` when set, else ``cache/`` at the repository root.
    Everything in it is safe to delete at any time.
    """
    root = Path(os.environ.get("EXPLORER_CACHE") or REPO_ROOT / "cache")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through: renamed into place only when the block succeeds."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())
