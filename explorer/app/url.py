"""The browser's address: the view, the dataset's key and the open predictions' keys read from
``st.query_params`` and written back. What they mean is :mod:`explorer.coco.view_state`'s."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer.coco.view_state import (
    DATASET_PARAM,
    PREDICTIONS_PARAM,
    frame_params,
    view_params,
    with_frame,
)


def view_in_url() -> dict[str, str]:
    """The address's view part (everything but the dataset's and the predictions' keys)."""
    return view_params(st.query_params.to_dict())


def show_view(query: dict[str, str]) -> None:
    """Put a view's query string in the address, the dataset's and the predictions' keys kept
    in front; an address that already says it is left alone."""
    if query != view_in_url():
        st.query_params.from_dict(with_frame(query, frame_params(st.query_params.to_dict())))


def dataset_in_url() -> str | None:
    """The dataset key the address carries (``?ds=``), if any."""
    return st.query_params.get(DATASET_PARAM)


def show_only_dataset(key: str) -> None:
    """The address of a dataset just opened: its key and no view, written at once (the browser
    keeps one history entry per address written: clearing first would add an empty one, where
    Back would stop)."""
    st.query_params.from_dict({DATASET_PARAM: key})


def show_dataset(key: str) -> None:
    """Put the dataset's key in the address."""
    st.query_params[DATASET_PARAM] = key


def predictions_in_url() -> str | None:
    """The predictions keys the address carries (``?preds=k1,k2``), as written."""
    return st.query_params.get(PREDICTIONS_PARAM)


def show_predictions(keys: list[str]) -> None:
    """Put the open predictions' keys in the address (none: the parameter goes); an address
    that already says so is left alone."""
    value = ",".join(keys)
    if value == (predictions_in_url() or ""):
        return
    if value:
        st.query_params[PREDICTIONS_PARAM] = value
    else:
        del st.query_params[PREDICTIONS_PARAM]


def history_navigation() -> bool:
    """Whether this run answers the browser's Back or Forward: the address then is the view
    to show, even one this session wrote itself."""
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.is_history_navigation)
