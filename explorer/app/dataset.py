"""The dataset picker in the sidebar, and the current dataset for pages.

``st.session_state`` holds only the current :class:`DatasetSource` (two paths and a label); the
index itself comes from :func:`explorer.app.caches.get_index`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.app import state
from explorer.app.caches import get_index
from explorer.coco import CocoIndex
from explorer.coco.sources import (
    DatasetSource,
    find_splits,
    from_files,
    initial_source,
    sample_sources,
)
from explorer.errors import ExplorerError, UnsafePathError

_SOURCE_KINDS = ["Sample", "COCO folder", "Files"]
ROOTS_VARIABLE = "EXPLORER_DATA_ROOTS"


def data_roots() -> tuple[Path, ...]:
    """The folders the picker may open (``$EXPLORER_DATA_ROOTS``, os.pathsep-separated, links
    resolved); empty when unset, and then any folder the server can read."""
    raw = os.environ.get(ROOTS_VARIABLE, "")
    return tuple(Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p.strip())


def check_allowed(path: str) -> None:
    """Refuse a typed path outside the data roots, before anything reads it (so that the answer
    does not even tell whether the file exists). Symbolic links are resolved first.

    Raises:
        UnsafePathError: the path resolves outside every root.
    """
    roots = data_roots()
    if not roots or not path:
        return
    real = Path(path).expanduser().resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise UnsafePathError(f"{path}: outside the folders this server may open")


def _open(source: DatasetSource) -> CocoIndex:
    index = get_index(source.annotations, source.images)
    state.set_current_source(source)
    return index


def _seed_picker(source: DatasetSource) -> None:
    """Show the start-up dataset in the picker (before its widgets exist)."""
    if source.label.startswith("sample "):
        st.session_state.update(ds_kind="Sample", ds_sample=source.label)
    else:
        st.session_state.update(ds_kind="Files", ds_ann=source.annotations, ds_images=source.images)


def _startup_source() -> DatasetSource:
    """``-- --coco/--images``, ``$EXPLORER_COCO``, else the sample's val split."""
    try:
        given = initial_source(sys.argv[1:], os.environ)
    except ExplorerError as e:
        st.error(f"Could not open the dataset given at start-up: {e}. Showing the sample instead.")
        given = None
    return given or sample_sources()[-1]


def _open_first_dataset() -> None:
    try:
        _open(_startup_source())
    except ExplorerError as e:
        st.error(f"Could not open the dataset: {e}. Showing the sample instead.")
        _open(sample_sources()[-1])
    _seed_picker(state.current_source())


def _picked_source(side, kind: str) -> DatasetSource | None:
    """The widgets of one kind of source; the source whose Open button was pressed, if any.

    Raises:
        ExplorerError: a typed path is not a dataset.
    """
    if kind == "Sample":
        samples = {s.label: s for s in sample_sources()}
        st.session_state.setdefault("ds_sample", list(samples)[-1])
        label = side.selectbox("Split", list(samples), key="ds_sample")
        return samples[label] if side.button("Open", key="ds_open_sample") else None
    if kind == "COCO folder":
        root = side.text_input("COCO root folder", key="ds_root", placeholder="/data/coco")
        if not root:
            return None
        check_allowed(root)
        splits = {s.label: s for s in find_splits(root)}
        label = side.selectbox("Split", list(splits), key="ds_split")
        return splits[label] if side.button("Open", key="ds_open_root") else None
    ann = side.text_input("Annotation file", key="ds_ann", placeholder="instances_val2017.json")
    images = side.text_input("Image folder", key="ds_images", placeholder="val2017 (optional)")
    opened = side.button("Open", key="ds_open_files", disabled=not ann)
    if not opened:
        return None
    check_allowed(ann)
    check_allowed(images)
    return from_files(ann, images)


def _current_or_sample(side) -> tuple[DatasetSource, CocoIndex]:
    source = state.current_source()
    try:
        return source, get_index(source.annotations, source.images)
    except ExplorerError as e:  # the file went away since it was opened
        side.error(f"{e}. Back to the sample.")
        source = sample_sources()[-1]
        return source, _open(source)


def dataset_sidebar() -> tuple[DatasetSource, CocoIndex]:
    """The sidebar's dataset picker; returns the current dataset (the last one that opened)."""
    if state.current_source() is None:
        _open_first_dataset()
    side = st.sidebar
    side.header("Dataset")
    kind = side.radio(
        "Source",
        _SOURCE_KINDS,
        horizontal=True,
        key="ds_kind",
        help="The embedded sample, a COCO root folder (annotations/instances_*.json and "
        "train2017/, val2017/ ...), or an annotation file with its image folder.",
    )
    try:
        chosen = _picked_source(side, kind)
        if chosen is not None:
            if kind != "Sample":  # a split's files may be links that lead out of its root
                check_allowed(chosen.annotations)
                check_allowed(chosen.images)
            _open(chosen)
    except ExplorerError as e:
        side.error(f"{e}")
    source, index = _current_or_sample(side)
    crowd = int(np.count_nonzero(index.annotations["iscrowd"]))
    side.caption(
        f"**{source.label}** — {index.num_images:,} images, {index.num_annotations:,} annotations "
        f"({crowd:,} crowd), {len(index.categories)} categories · opened in "
        f"{index.load_seconds:.2f} s{' (cache)' if index.from_cache else ''}"
    )
    if not source.images:
        side.warning("No image folder: masks are drawn on a grey canvas.")
    return source, index


_frame = threading.local()


@contextmanager
def app_frame() -> Iterator[None]:
    """Marks a run of ``app.py`` (its sidebar, then the page it runs)."""
    _frame.active = True
    try:
        yield
    finally:
        _frame.active = False


def page_dataset() -> tuple[DatasetSource, CocoIndex]:
    """For pages: the current dataset.

    A page normally runs inside ``app.py``, which drew the dataset picker. A deep link into a
    page reaching a server that has not run ``app.py`` yet runs the page alone (Streamlit's
    legacy ``pages/`` mode): then the page draws the picker itself.
    """
    if not getattr(_frame, "active", False):
        st.set_page_config(page_title="COCO Explorer", layout="wide")
        return dataset_sidebar()
    source = state.current_source()
    return source, get_index(source.annotations, source.images)
