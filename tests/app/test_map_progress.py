"""Issue 22, walk 12: the first UMAP map of a server sat 42 s behind a full, bare progress bar
(numba compiling UMAP); the progress text now says why, and only while it is true."""

from __future__ import annotations

import sys
import types

from explorer.app.map_widgets import draw_progress_label


def test_the_first_umap_map_says_it_compiles_umap_once(monkeypatch):
    monkeypatch.delitem(sys.modules, "umap", raising=False)  # this process never ran UMAP
    first = draw_progress_label("umap")
    assert first.startswith("reading the objects")
    assert "compiling UMAP once" in first and "later maps are fast" in first
    for quick in ("pca", "tsne"):  # nothing to compile
        assert draw_progress_label(quick) == "reading the objects"
    monkeypatch.setitem(sys.modules, "umap", types.ModuleType("umap"))  # UMAP ran before
    assert draw_progress_label("umap") == "reading the objects"
