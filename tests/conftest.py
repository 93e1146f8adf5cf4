"""Shared fixtures: an isolated cache directory, the embedded sample, the real coco-tiny files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Every test run gets its own cache (index caches, the sample) instead of the repo's."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("EXPLORER_CACHE", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def sample_root(_cache_dir) -> Path:
    from explorer.coco.sample import write_sample

    return write_sample()
