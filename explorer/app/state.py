"""Session state that crosses pages, under names; each page's own widget keys carry its prefix.

Streamlit keeps widget values in ``st.session_state`` under their ``key``. A page's own widgets
use keys starting with its prefix, so a page can reset its state without touching another's:

=========  =================  =========  ==========================
prefix     page               prefix     page
=========  =================  =========  ==========================
``ds_``    dataset picker     ``c_``     Classify
``b_``     Browse (filters)   ``s_``     Segment
``d_``     Browse (detail)    ``k_``     Compare
``x_``     Distributions      ``a_``     Anatomy
``t_``     Train              ``k1_``    Compare's classifier picker
``open_``  Browse grid        ``k2_``    Compare's segmenter picker
``stop_``  Stop buttons of    ``dl_``    Download COCO form
           evaluate_on_filter ``m_``     Map (its classifier picker too)
``q_``     Mistakes           ``q1_``    Mistakes' classifier picker
``q2_``    Mistakes'          ``pr_``    Predictions (sidebar)
           segmenter picker   ``ev_``    Evaluate
=========  =================  =========  ==========================

What one page leaves for another goes through the functions below, never a bare string.
"""

from __future__ import annotations

import streamlit as st

from explorer.coco.filters import ImageFilter
from explorer.coco.sources import DatasetSource
from explorer.coco.view_state import DEFAULT_MIN_SCORE, BrowseState
from explorer.predictions.sources import PredictionsSource

DATASET = "dataset_source"
BROWSE_FILTER = "b_filter"
BROWSE_IMAGE = "b_image"
BROWSE_PREFIXES = ("b_", "d_")
MISTAKES = "mistakes_result"
PREDICTIONS = "predictions_open"
SCORE_THRESHOLD = "score_threshold"  # Browse's and the Evaluate page's, one value


def current_source() -> DatasetSource | None:
    """The dataset the session has open (set by the dataset picker)."""
    return st.session_state.get(DATASET)


def opened_source() -> DatasetSource:
    """The dataset the session has open, where one must be: the dataset picker opens one before
    anything else reads it."""
    source = current_source()
    if source is None:
        raise RuntimeError("no dataset is open: the dataset picker opens one first")
    return source


def set_current_source(source: DatasetSource) -> None:
    st.session_state[DATASET] = source


def browse_filter() -> ImageFilter | None:
    """The filter set on the Browse page (Distributions, Classify, Segment, Compare follow it)."""
    return st.session_state.get(BROWSE_FILTER)


def set_browse_filter(flt: ImageFilter) -> None:
    st.session_state[BROWSE_FILTER] = flt


def browse_image() -> int | None:
    """The image open in Browse (the model pages start on it)."""
    return st.session_state.get(BROWSE_IMAGE)


def open_in_browse(image_id: int | None) -> None:
    """Open an image in Browse's detail view (None: back to the grid)."""
    st.session_state[BROWSE_IMAGE] = image_id


def forget_browse_state() -> None:
    """Drop Browse's filters and detail settings (another dataset was opened); the filters on
    screen show every image again (:func:`show_browse_view`)."""
    for key in [k for k in st.session_state if k.startswith(BROWSE_PREFIXES)]:
        del st.session_state[key]
    show_browse_view(BrowseState())


def show_browse_view(view: BrowseState, full_range: tuple[int, int] | None = None) -> None:
    """Put a view into Browse's widgets (their keys) and open its image: the one place that
    writes them.

    Every filter key gets a value, none is deleted: Streamlit sends a value written to a
    widget's key back to the browser, while a deleted key leaves the browser showing the old
    value (and sending it again with the next change). ``full_range`` is the annotations-per-image
    slider's whole span (its value when the view sets no range); without it the page sets it.
    """
    st.session_state.update(
        b_cats=list(view.categories),
        b_supers=list(view.supercategories),
        b_match=view.match,
        b_crowd=view.crowd,
        b_size=view.size,
        b_q=view.query,
        b_page=view.page,
        b_ids=view.image_ids,
        b_fn=view.missed,
        b_fp=view.false_positive,
        b_sort=view.order,
    )
    if view.predictions:
        st.session_state["b_pred"] = view.predictions
    st.session_state["b_score"] = view.min_score
    set_score_threshold(view.min_score)
    if view.instances or full_range:
        st.session_state["b_inst"] = view.instances or full_range
    else:
        st.session_state.pop("b_inst", None)
    open_in_browse(view.image_id)


def reset_browse_filters(full_range: tuple[int, int]) -> None:
    """Back to every image, the open image, the predictions drawn and their threshold kept (a
    button's callback, before the widgets are drawn again)."""
    kept = BrowseState(
        image_id=browse_image(),
        predictions=st.session_state.get("b_pred", ""),
        min_score=score_threshold(),
    )
    show_browse_view(kept, full_range)


def turn_browse_page(step: int) -> None:
    """Browse's grid one page on or back (the page box clamps it)."""
    st.session_state["b_page"] = max(1, int(st.session_state.get("b_page", 1)) + step)


def mistakes_table():
    """The last table the Mistakes page found (a DataFrame of ``mistakes.COLUMNS``), or None:
    the Map colours objects by its scores."""
    return st.session_state.get(MISTAKES)


def set_mistakes_table(frame) -> None:
    st.session_state[MISTAKES] = frame


def open_predictions() -> tuple[PredictionsSource, ...]:
    """The predictions files the session has open (for the current dataset), in the order
    they were opened."""
    return tuple(st.session_state.get(PREDICTIONS, ()))


def set_open_predictions(sources: tuple[PredictionsSource, ...]) -> None:
    st.session_state[PREDICTIONS] = tuple(sources)


def score_threshold() -> float:
    """The score under which detections are hidden and not counted: Browse's and the Evaluate
    page's sliders show and set this one value."""
    return float(st.session_state.get(SCORE_THRESHOLD, DEFAULT_MIN_SCORE))


def set_score_threshold(value: float) -> None:
    st.session_state[SCORE_THRESHOLD] = float(value)


def start_score_slider(key: str, top: float) -> None:
    """Give the score slider under ``key`` the shared threshold when it has no value yet (its
    page just opened: Streamlit forgets a widget's value on pages that do not draw it), kept
    within its range ``0..top``."""
    value = st.session_state.get(key, score_threshold())
    if st.session_state.get(key) != min(max(value, 0.0), top):
        st.session_state[key] = min(max(value, 0.0), top)
