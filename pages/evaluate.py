"""Evaluate: your own predictions (a COCO results file) scored as COCO scores them, per category,
per score threshold, per kind of error; two files side by side."""

import streamlit as st

from explorer.app import dataset_picker, predictions_picker
from explorer.app import evaluation_view as view

source, index = dataset_picker.page_dataset()
opened = predictions_picker.page_predictions(source)
st.title("Evaluate")
if not opened:
    view.no_predictions("ev_none")
    st.stop()
st.caption(
    "COCO's evaluation of a results file against this dataset, equal to pycocotools' COCOeval; "
    "then where it goes wrong. Click a bar or a matrix cell to browse those images."
)
left, right = st.columns([2, 1])
with left:
    predictions = view.pick_predictions(opened, "ev_preds")
with right:
    kind = view.pick_kind(predictions, "ev_kind")
result = view.scored(source, index, predictions, kind)
if result is None:
    st.stop()

st.subheader("Summary")
left, right = st.columns([1.1, 1], gap="large")
with left:
    view.summary(result, "ev_summary")
with right:
    view.mean_pr_curves(result, "ev_pr_all")
st.subheader("Per category")
left, right = st.columns(2, gap="large")
with left:
    view.category_ap(result, "ev_ap")
with right:
    view.category_pr_curves(result, "ev_pr")
st.subheader("At a score threshold")
min_score = view.score_threshold(result, "ev_score", shared=True)
view.counts(result, min_score, "ev_counts")
view.confusion(result, min_score, "ev_confusion")
st.subheader("Errors")
view.error_breakdown(result, "ev_errors")
if len(opened) > 1:
    st.subheader("Two files side by side")
    view.side_by_side(source, index, opened, result.key.kind, "ev_vs")
