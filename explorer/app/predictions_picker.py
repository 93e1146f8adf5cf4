"""The sidebar's Predictions section, under the dataset: the predictions files open for the
current dataset (by name, each with a Remove button) and the "Add predictions…" form.

``st.session_state`` holds only :class:`PredictionsSource` values (paths, names, kinds, the
dataset's key); their records and evaluations come from :mod:`explorer.app.caches`. The address
carries their keys (``?preds=k1,k2``), never their paths: a link opens them in a fresh session.
Files given at start-up (``-- --predictions [NAME=]PATH``, repeatable, or
``$EXPLORER_PREDICTIONS``) open with the dataset they were given with.
"""

from __future__ import annotations

import os

import streamlit as st

from explorer.app import caches, state, url
from explorer.app.dataset_picker import check_allowed, startup_argv
from explorer.coco.sources import DatasetSource, initial_source, source_key
from explorer.errors import ExplorerError, PredictionsError
from explorer.predictions.sources import (
    PredictionsSource,
    find_predictions,
    keys_of,
    open_predictions,
    predictions_key,
    remember_predictions,
    startup_predictions,
)

STARTED = "pr_started"  # the start-up files were opened (once per session)
REMOVED = "pr_removed"  # keys removed in this session: an address written before says them still


def _skipped_text(skipped: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {why}" for why, n in sorted(skipped.items()))


def add_predictions(source: DatasetSource, path: str, name: str = "") -> PredictionsSource:
    """Open a results file for the current dataset: its records are read (the Evaluate page
    finds them cached) and it joins the open ones (a file already open under that name is not
    opened twice).

    Raises:
        PredictionsError: the file is not a results file, or none of its records fit the
            dataset (image or category ids it does not have).
    """
    opened = open_predictions(path, source_key(source), name)
    with st.spinner(f"Reading the predictions {opened.name}…", show_time=True):
        found = caches.detections(
            caches.scored_file(source.annotations, source.images, opened.path, opened.kind)
        )
    if not len(found) and found.num_skipped:
        raise PredictionsError(
            f"{opened.path}: none of its {found.num_skipped:,} records fit {source.label} "
            f"({_skipped_text(found.skipped)}): predictions made on another dataset?"
        )
    key = remember_predictions(opened)
    st.session_state.get(REMOVED, set()).discard(key)
    kept = tuple(p for p in state.open_predictions() if predictions_key(p) != key)
    state.set_open_predictions((*kept, opened))
    return opened


def remove_predictions(key: str) -> None:
    """Close an open predictions file (a button's callback)."""
    st.session_state.setdefault(REMOVED, set()).add(key)
    state.set_open_predictions(
        tuple(p for p in state.open_predictions() if predictions_key(p) != key)
    )


def _open_startup_files(source: DatasetSource) -> None:
    """The files given at start-up, once per session, when the dataset open is the one they
    were given with (a link may have opened another)."""
    if st.session_state.get(STARTED):
        return
    st.session_state[STARTED] = True
    argv = startup_argv()
    given = startup_predictions(argv, os.environ)
    if not given:
        return
    try:
        first = initial_source(argv, os.environ)
    except ExplorerError:  # the dataset they were given with did not open: the sample is
        return
    if first is not None and source_key(first) != source_key(source):
        return
    for name, path in given:
        try:
            add_predictions(source, path, name)
        except ExplorerError as e:
            st.error(f"Could not open the predictions given at start-up: {e}")


def _open_linked_files(source: DatasetSource) -> None:
    """A link's ``?preds=`` keys open the files registered under them on this server, when
    they were opened for this dataset; a key that cannot be is said in one line."""
    open_keys = {predictions_key(p) for p in state.open_predictions()}
    removed = st.session_state.get(REMOVED, set())
    for key in keys_of(url.predictions_in_url()):
        if key in open_keys or key in removed:
            continue
        found = find_predictions(key)
        try:
            if found is None or found.dataset != source_key(source):
                raise PredictionsError("this server has no predictions of this dataset under it")
            check_allowed(found.path)
            add_predictions(source, found.path, found.name)
        except ExplorerError as e:
            st.error(f"The link's predictions ({key}) cannot be opened: {e}")


def predictions_sidebar(source: DatasetSource) -> tuple[PredictionsSource, ...]:
    """The sidebar's Predictions section for the current dataset; returns the open files.
    Files opened for another dataset are dropped. The address carries their keys."""
    dataset = source_key(source)
    state.set_open_predictions(tuple(p for p in state.open_predictions() if p.dataset == dataset))
    _open_startup_files(source)
    _open_linked_files(source)
    side = st.sidebar
    side.header("Predictions")
    listing = side.container()  # filled after the form: a file it adds is listed at once
    _add_form(side, source)
    for opened in state.open_predictions():
        row = listing.container(horizontal=True, vertical_alignment="center")
        row.markdown(f"**{opened.name}** · {', '.join(opened.kinds)}", width="stretch")
        key = predictions_key(opened)
        row.button(
            "",
            icon=":material/close:",
            key=f"pr_remove_{key}",
            help=f"Close {opened.path}",
            on_click=remove_predictions,
            args=(key,),
        )
    opened_now = state.open_predictions()
    url.show_predictions([predictions_key(p) for p in opened_now])
    return opened_now


def _add_form(side, source: DatasetSource) -> None:
    """The "Add predictions…" form: a results file's path and a name; its kind is read from
    its first record. A bad file is one line, the open files stay."""
    with side.expander("Add predictions…", expanded=not state.open_predictions()):
        path = st.text_input(
            "Results file",
            key="pr_path",
            placeholder="detections_val2017.json",
            help="A COCO results file (a JSON list of detections, as pycocotools' loadRes "
            "reads) computed on this dataset; bbox, segm or keypoints, read from its records.",
        )
        name = st.text_input("Name", key="pr_name", placeholder="the file's name")
        if not st.button("Add", key="pr_add", disabled=not path):
            return
        try:
            check_allowed(path)
            add_predictions(source, path, name)
        except ExplorerError as e:
            st.error(str(e))


def page_predictions(source: DatasetSource) -> tuple[PredictionsSource, ...]:
    """For pages: the open predictions files of the current dataset (the sidebar, drawn by
    ``app.py`` or by ``dataset_picker.page_dataset``, opened them)."""
    dataset = source_key(source)
    return tuple(p for p in state.open_predictions() if p.dataset == dataset)
