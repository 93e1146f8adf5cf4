"""Where runtime files live: the one cache directory resolver."""

from __future__ import annotations

import os
from pathlib import Path

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
