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
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.app import state, url
from explorer.app.caches import get_index
from explorer.app.download import download_form
from explorer.coco import CocoIndex, sample
from explorer.coco.sources import (
    DatasetSource,
    find_source,
    find_splits,
    from_files,
    initial_source,
    remember_source,
    sample_sources,
    source_key,
)
from explorer.errors import ExplorerError, UnsafePathError
from explorer.types import COCO_HOST

_SOURCE_KINDS = ["Sample", "COCO folder", "Files", "Download"]
# the host "Download" fetches from: COCO's own, or a mirror
MIRROR_VARIABLE = "EXPLORER_COCO_URL"
_SAMPLE_LABELS = [f"sample {split}" for split in sample.SPLITS]
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
    remember_source(source)
    return index


_SAMPLE_LOCK = threading.Lock()  # one session writes the sample; the others wait for it


def _samples() -> list[DatasetSource]:
    """The sample's splits. On a first start they are generated (seconds): the page's name and
    a spinner show meanwhile, so the main area is never blank. (The page draws its own ``h1``
    title when it runs: the heading here is smaller, and says the page is not drawn yet.)"""
    if sample.is_written():
        return sample_sources()
    holder = st.empty()
    with holder.container():
        if getattr(_frame, "title", ""):
            st.header(_frame.title, divider="gray")
        with st.spinner("Preparing the sample dataset (first start only)…", show_time=True):
            with _SAMPLE_LOCK:
                found = sample_sources()
    holder.empty()
    return found


def _seed_picker(source: DatasetSource) -> None:
    """Show the open dataset in the picker (before its widgets exist)."""
    if _is_sample(source):
        st.session_state.update(ds_kind="Sample", ds_sample=source.label)
    else:
        st.session_state.update(ds_kind="Files", ds_ann=source.annotations, ds_images=source.images)


def _is_sample(source: DatasetSource) -> bool:
    """Whether ``source`` is a split of the embedded sample (never generates it)."""
    return source.label in _SAMPLE_LABELS and sample.is_written() and source in sample_sources()


def startup_argv() -> list[str]:
    """``streamlit run app.py -- ARGS`` sets ``sys.argv`` to the script and ARGS; under AppTest
    (or a benchmark) ``sys.argv`` is the test runner's and is not for the app."""
    ctx = get_script_run_ctx()
    main = Path(ctx.main_script_path).resolve() if ctx else None
    return sys.argv[1:] if sys.argv and Path(sys.argv[0]).resolve() == main else []


def _startup_source() -> DatasetSource:
    """``-- --coco/--images``, ``$EXPLORER_COCO``, else the sample's val split."""
    try:
        given = initial_source(startup_argv(), os.environ)
    except ExplorerError as e:
        st.error(f"Could not open the dataset given at start-up: {e}. Showing the sample instead.")
        given = None
    return given or _samples()[-1]


def _open_first_dataset() -> None:
    try:
        source = _startup_source()
        _open(source)
    except ExplorerError as e:
        st.error(f"Could not open the dataset: {e}. Showing the sample instead.")
        source = _samples()[-1]
        _open(source)
    _seed_picker(source)


def _open_linked_dataset() -> None:
    """A link's ``?ds=`` key (a dataset opened on this server before) opens that dataset; a key
    the server cannot open is said in one line, and the picker stays to choose another."""
    key = url.dataset_in_url()
    current = state.current_source()
    if not key or (current is not None and source_key(current) == key):
        return
    source = find_source(key)
    try:
        if source is None:
            raise ExplorerError("this server has no dataset under that key")
        if not _is_sample(source):
            check_allowed(source.annotations)
            check_allowed(source.images)
        _open(source)
        _seed_picker(source)
    except ExplorerError as e:
        st.error(
            f"The link's dataset ({key[:40]!r}) cannot be opened: {e}. "
            "Choose a dataset under Dataset in the sidebar.",
            icon=":material/link_off:",
        )
        st.query_params.clear()
        st.session_state["ds_kind"] = "Files"


def _picked_source(side, kind: str) -> DatasetSource | None:
    """The widgets of one kind of source; the source whose Open button was pressed, if any.

    Raises:
        ExplorerError: a typed path is not a dataset.
    """
    if kind == "Sample":
        if st.session_state.get("ds_sample") not in _SAMPLE_LABELS:
            st.session_state["ds_sample"] = _SAMPLE_LABELS[-1]
        label = side.selectbox("Split", _SAMPLE_LABELS, key="ds_sample")
        if not side.button("Open", key="ds_open_sample"):
            return None
        return next(s for s in _samples() if s.label == label)
    if kind == "Download":
        return _downloaded(side)
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


def _downloaded(side) -> DatasetSource | None:
    """The "Download COCO…" form; its result, once, when a download has just finished."""
    if data_roots():  # a shared server: visitors must not write folders anywhere
        side.info(f"Downloading is off on this server ({ROOTS_VARIABLE} restricts its folders).")
        return None
    result = download_form(
        side.container(),
        base_url=os.environ.get(MIRROR_VARIABLE) or COCO_HOST,
        default_dest=str(Path("data") / "coco"),
    )
    if result is None or st.session_state.get("ds_download_opened") == str(result.annotations):
        return None
    st.session_state["ds_download_opened"] = str(result.annotations)
    return from_files(str(result.annotations), str(result.images or ""))


def _current_or_sample(side) -> tuple[DatasetSource, CocoIndex]:
    source = state.opened_source()
    try:
        return source, get_index(source.annotations, source.images)
    except ExplorerError as e:  # the file went away since it was opened
        side.error(f"{e}. Back to the sample.")
        source = _samples()[-1]
        return source, _open(source)


def _open_chosen(chosen: DatasetSource, kind: str) -> None:
    """Open the dataset the picker chose: the old dataset's view (image, filters, URL) goes."""
    if kind != "Sample":  # a split's files may be links that lead out of its root
        check_allowed(chosen.annotations)
        check_allowed(chosen.images)
    _open(chosen)
    state.forget_browse_state()
    url.show_only_dataset(source_key(chosen))


def dataset_sidebar() -> tuple[DatasetSource, CocoIndex]:
    """The sidebar's dataset picker; returns the current dataset (the last one that opened).
    The URL carries the dataset's key (``?ds=``)."""
    _open_linked_dataset()
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
        "train2017/, val2017/ ...), an annotation file with its image folder, or real COCO "
        "downloaded here (all of a split, or a subset by category and count).",
    )
    try:
        chosen = _picked_source(side, kind)
        if chosen is not None:
            _open_chosen(chosen, kind)
    except ExplorerError as e:
        side.error(f"{e}")
    source, index = _current_or_sample(side)
    url.show_dataset(remember_source(source))
    _caption(side, source, index)
    return source, index


def _caption(side, source: DatasetSource, index: CocoIndex) -> None:
    crowd = int(np.count_nonzero(index.annotations["iscrowd"]))
    side.caption(
        f"**{source.label}** — {index.num_images:,} images, {index.num_annotations:,} annotations "
        f"({crowd:,} crowd), {len(index.categories)} categories · opened in "
        f"{index.load_seconds:.2f} s{' (cache)' if index.from_cache else ''}"
    )
    if not source.images:
        side.warning("No image folder: masks are drawn on a grey canvas.")
    elif missing := image_folder_missing(source):
        side.warning(missing)


def image_folder_missing(source: DatasetSource) -> str | None:
    """What to say when the dataset's image folder does not exist (given at start-up, or gone
    since): the annotations are open, the images show as missing."""
    if not source.images or Path(source.images).is_dir():
        return None
    return (
        f"Image folder not found: {source.images}. The annotations are open; every image "
        "shows as a crossed-out placeholder marked missing."
    )


_frame = threading.local()


@contextmanager
def app_frame(title: str = "") -> Iterator[None]:
    """Marks a run of ``app.py`` (its sidebar, then the page it runs, whose title is given)."""
    _frame.active, _frame.title = True, title
    try:
        yield
    finally:
        _frame.active, _frame.title = False, ""


def in_app_frame() -> bool:
    """Whether this run goes through ``app.py`` (which drew the sidebar), not a page alone."""
    return bool(getattr(_frame, "active", False))


def page_dataset() -> tuple[DatasetSource, CocoIndex]:
    """For pages: the current dataset.

    A page normally runs inside ``app.py``, which drew the dataset picker. A deep link into a
    page reaching a server that has not run ``app.py`` yet runs the page alone (Streamlit's
    legacy ``pages/`` mode): then the page draws the picker itself.
    """
    if not in_app_frame():
        st.set_page_config(page_title="COCO Explorer", layout="wide")
        source, index = dataset_sidebar()
        # the Predictions section goes under the dataset's, as app.py draws it (that module
        # builds on this one: imported here, not at the top)
        from explorer.app.predictions_picker import predictions_sidebar

        predictions_sidebar(source)
        return source, index
    source = state.opened_source()
    return source, get_index(source.annotations, source.images)
