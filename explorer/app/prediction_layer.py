"""Browse's predictions layer: which open predictions file it draws, the score threshold (the
Evaluate page's too), the filters on its errors and the order by them, and the detail view's
lists of matches.

Outcomes are COCO's matching at IoU 0.5 of the file as its first kind
(:attr:`PredictionsSource.kind`), at the threshold: see
:mod:`explorer.evaluation.image_outcomes`. The widgets' keys carry Browse's ``b_`` prefix, so
another dataset or **Reset filters** clears them with the rest (:mod:`explorer.app.state`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import caches, state
from explorer.coco import CocoIndex
from explorer.coco.sources import DatasetSource
from explorer.coco.view_state import ImageOrder
from explorer.errors import ExplorerError
from explorer.evaluation.image_outcomes import ImageMatches, images_missing, images_with_cause
from explorer.predictions.sources import PredictionsSource, predictions_key
from explorer.types import ERROR_CAUSES, ErrorCause
from explorer.viz import overlays

ORDERS: dict[ImageOrder, str] = {"file": "file order", "errors": "most errors"}


@dataclass(frozen=True)
class Layer:
    """The predictions Browse draws and what it keeps of the images by them.

    Attributes:
        predictions: the file; key: the caches' key of it scored as its first kind.
        choose: whether several files are open (the address then names the one drawn).
        min_score: detections scoring less are neither drawn nor counted.
        missed: only images where an object of this category id was missed (FN).
        false_positive: only images with a false positive of this cause.
        order: "errors": the images with the most FP + FN first.
    """

    predictions: PredictionsSource
    key: caches.ScoredFile
    choose: bool
    min_score: float
    missed: int | None
    false_positive: ErrorCause | None
    order: ImageOrder

    def view_fields(self) -> dict:
        """The layer as :class:`~explorer.coco.view_state.BrowseState` fields."""
        return {
            "predictions": predictions_key(self.predictions) if self.choose else "",
            "min_score": self.min_score,
            "missed": self.missed,
            "false_positive": self.false_positive,
            "order": self.order,
        }


def _pick_file(opened: tuple[PredictionsSource, ...], column) -> PredictionsSource:
    keys = [predictions_key(p) for p in opened]
    if st.session_state.get("b_pred") not in keys:
        st.session_state["b_pred"] = keys[0]
    names = {predictions_key(p): p.name for p in opened}
    chosen = column.selectbox("Predictions", keys, format_func=names.__getitem__, key="b_pred")
    return opened[keys.index(chosen)]


def layer_filters(
    source: DatasetSource, index: CocoIndex, opened: tuple[PredictionsSource, ...]
) -> Layer | None:
    """The layer's widgets (a row of Browse's filters); None, and nothing drawn, without open
    predictions, and one error line when the file cannot be scored."""
    if not opened:
        return None
    several = len(opened) > 1
    cols = st.columns([1.4, 1.6, 1.6, 1.6, 1.2] if several else [1.6, 1.6, 1.6, 1.2])
    predictions = _pick_file(opened, cols[0]) if several else opened[0]
    cols = cols[1:] if several else cols
    try:
        key = caches.scored_file(
            source.annotations, source.images, predictions.path, predictions.kind
        )
        with st.spinner(f"Evaluating {predictions.name}…", show_time=True):
            top = max(1.0, float(np.ceil(caches.evaluation(key).layout.dt_score.max(initial=0))))
    except ExplorerError as e:
        st.error(f"{predictions.name} cannot be drawn: {e}")
        return None
    state.start_score_slider("b_score", top)
    min_score = cols[0].slider(
        f"Score threshold ({predictions.name})",
        0.0,
        top,
        step=0.01,
        key="b_score",
        help="Detections scoring below it are not drawn nor counted (the Evaluate page's "
        "threshold too)",
    )
    state.set_score_threshold(min_score)
    names = {int(c["id"]): str(c["name"]) for c in index.categories}
    missed = cols[1].selectbox(
        "With an FN (missed) of",
        [None, *sorted(names, key=names.__getitem__)],
        format_func=lambda c: "any, or none" if c is None else names[c],
        key="b_fn",
        placeholder="any, or none",
        help="Only images where an object of this category was missed: found by no "
        "detection above the threshold (COCO's matching at IoU 0.5)",
    )
    cause = cols[2].selectbox(
        "With an FP of cause",
        [None, *ERROR_CAUSES],
        format_func=lambda c: "any, or none" if c is None else c,
        key="b_fp",
        placeholder="any, or none",
        help="Only images with a false positive of this cause: a detection above the "
        "threshold that found no object (the Evaluate page's Errors explain each cause)",
    )
    order = cols[3].selectbox("Order", list(ORDERS), format_func=ORDERS.__getitem__, key="b_sort")
    return Layer(predictions, key, several, min_score, missed, cause, order)


def kept_rows(layer: Layer | None, index: CocoIndex, rows: np.ndarray) -> np.ndarray:
    """``rows`` (image rows) that the layer's filters keep, in the layer's order."""
    if layer is None:
        return rows
    outcomes = caches.outcomes(layer.key, layer.min_score)
    ids = index.images["id"][rows]
    keep = np.ones(len(rows), bool)
    if layer.missed is not None:
        keep &= np.isin(ids, images_missing(outcomes, layer.missed))
    if layer.false_positive is not None:
        with st.spinner("Finding why each wrong detection is wrong…", show_time=True):
            analysis = caches.error_analysis(layer.key)
        keep &= np.isin(ids, images_with_cause(outcomes, analysis, layer.false_positive))
    rows = rows[keep]
    if layer.order == "errors":
        errors = outcomes.errors_of(index.images["id"][rows])
        rows = rows[np.argsort(-errors, kind="stable")]
    return rows


def errors_caption(layer: Layer | None, index: CocoIndex, rows: np.ndarray) -> str:
    """How many errors the images shown hold at the threshold ("" without a layer)."""
    if layer is None:
        return ""
    outcomes = caches.outcomes(layer.key, layer.min_score)
    errors = int(outcomes.errors_of(index.images["id"][rows]).sum())
    return (
        f"{errors:,} errors (FP + FN) of **{layer.predictions.name}** in them at score ≥ "
        f"{layer.min_score:.2f}, IoU 0.5"
    )


def legend() -> None:
    """The layer's colours and line styles, one line."""
    st.markdown(
        overlays.legend_markdown(overlays.outcome_legend())
        + " · detections dashed, with their score",
        unsafe_allow_html=True,
    )


def matches(layer: Layer, index: CocoIndex, image_id: int) -> None:
    """The image's matches: its kept detections (score, outcome and an FP's cause, the object
    found and the IoU) and the objects nobody found."""
    with st.spinner("Finding why each wrong detection is wrong…", show_time=True):
        found = caches.image_matches(layer.key, layer.min_score, image_id, causes=True)
    n = found.counts()
    st.markdown(f"**{layer.predictions.name}** at score ≥ {layer.min_score:.2f}")
    st.caption(
        f"{len(found)} detections drawn: {n['TP']} TP, {n['FP']} FP, {n['ignored']} ignored; "
        f"{n['FN']} objects missed (FN); {found.dropped} detections under the threshold hidden"
    )
    names = {int(c["id"]): str(c["name"]) for c in index.categories}
    st.dataframe(
        matches_table(found, names),
        hide_index=True,
        key=f"d_matches_{image_id}",
        height=min(320, 38 + 35 * len(found)),
        column_config={
            "object": st.column_config.NumberColumn(help="the annotation it found", format="%d"),
            "IoU": st.column_config.NumberColumn(help="with the annotation it found"),
        },
    )
    anns = index.annotations
    missed = found.missed_rows
    if len(missed):
        st.dataframe(
            pd.DataFrame(
                {
                    "missed object": anns["id"][missed],
                    "category": [names[int(c)] for c in anns["category_id"][missed]],
                }
            ),
            hide_index=True,
            key=f"d_missed_{image_id}",
            height=min(250, 38 + 35 * len(missed)),
        )


def matches_table(found: ImageMatches, names: dict[int, str]) -> pd.DataFrame:
    """One row per kept detection: its score, category, outcome (an FP's cause after it), the
    annotation it found and their IoU (blank when it found none)."""
    cause = np.where(found.cause != "", ": " + found.cause.astype(str), "")
    matched = found.annotation_id >= 0
    return pd.DataFrame(
        {
            "score": np.round(found.score, 3),
            "category": [names.get(int(c), str(c)) for c in found.category_id],
            "outcome": found.outcome.astype(str) + cause,
            "object": pd.Series(found.annotation_id, dtype="Int64").where(matched),
            "IoU": np.where(matched, np.round(found.iou, 3), np.nan),
        }
    )
