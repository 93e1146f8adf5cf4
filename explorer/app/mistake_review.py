"""The Mistakes page's pieces: whose evidence (the classifier and segmenter pair, or an open
predictions file's detector), filters, a card per suspected mistake, decisions and the export.

Decisions ("not a mistake" / "confirmed") go to the reviews sidecar in the user's work folder
(:mod:`explorer.inference.reviews`); the export writes a corrected copy of the annotation file
next to it, under a new name (:mod:`explorer.coco.corrections`), never over any file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import caches
from explorer.coco import CocoIndex
from explorer.coco import masks as coco_masks
from explorer.coco.corrections import write_corrected
from explorer.coco.dataset import Dataset
from explorer.coco.images import crop_box
from explorer.coco.sources import DatasetSource
from explorer.errors import ExplorerError
from explorer.inference import detector_mistakes, reviews
from explorer.inference.cache import predict_image
from explorer.inference.mistakes import KINDS, MODELS
from explorer.models.weights import LoadedModel
from explorer.predictions.sources import PredictionsSource
from explorer.viz import overlays

SHOW = ("to review", "confirmed", "not a mistake", "all")
PER_PAGE = 8  # cards per page
KIND_LABELS = {"wrong_label": "wrong label", "missing": "missing object", "bad_mask": "bad mask"}


def names_of(index: CocoIndex) -> dict[int, str]:
    return {int(c["id"]): str(c["name"]) for c in index.categories}


def filtered(frame: pd.DataFrame, index: CocoIndex, decisions: dict, key: str) -> pd.DataFrame:
    """The rows the page's filters keep (kind, category, score, decision), best first."""
    counts = frame["kind"].value_counts()
    a, b, c, d = st.columns([1.4, 1.6, 1, 1])
    kind = a.radio(
        "Kind",
        KINDS,
        format_func=lambda k: f"{KIND_LABELS[k]} ({counts.get(k, 0):,})",
        key=f"{key}_kind",
    )
    names = names_of(index)
    cats = b.multiselect(
        "Categories (the suggested one)",
        sorted(names, key=names.__getitem__),
        format_func=names.__getitem__,
        key=f"{key}_cats",
    )
    low = c.slider("Score at least", 0.0, 1.0, 0.5, 0.05, key=f"{key}_min")
    show = d.radio("Show", SHOW, key=f"{key}_show")
    keep = (frame["kind"] == kind) & (frame["score"] >= low)
    if cats:
        keep &= frame["category_id"].isin(cats)
    out = frame[keep].sort_values("score", ascending=False)
    state = out.apply(reviews.row_key, axis=1).map(decisions) if len(out) else out["kind"]
    wanted = {"to review": None, "confirmed": "confirmed", "not a mistake": "reviewed"}
    if show != "all":
        target = wanted[show]
        out = out[state.isna()] if target is None else out[state == target]
    return out


def _mask_of(index: CocoIndex, row) -> np.ndarray | None:
    """The mask the card's left view shows: the annotation's, or the proposed region."""
    from pycocotools import mask as mask_utils

    if int(row["annotation_id"]) < 0:
        if not row["suggested_rle"]:
            return None
        r = index.image_row(int(row["image_id"]))
        h, w = int(index.images["height"][r]), int(index.images["width"][r])
        return mask_utils.decode({"size": [h, w], "counts": str(row["suggested_rle"]).encode()})
    ids = index.annotations["id"]
    a = int(np.flatnonzero(ids == int(row["annotation_id"]))[0])
    try:
        return coco_masks.annotation_mask(index, a)
    except ExplorerError:  # a box only: the box is drawn
        return None


def _evidence(row, names: dict[int, str]) -> str:
    def pct(v) -> str:
        return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.0%}"

    said = names.get(int(row["annotated_category_id"]), "")
    sugg = names.get(int(row["category_id"]), "?")
    if row["evidence"] != MODELS:
        return _detector_evidence(row, said, sugg)
    if row["kind"] == "wrong_label":
        return (
            f"**{said} → {sugg}?** · classifier {pct(row['classifier_annotated'])} {said}, "
            f"{pct(row['classifier_suggested'])} {sugg} · segmenter "
            f"{pct(row['segmenter_annotated'])} / {pct(row['segmenter_suggested'])} of the mask"
        )
    if row["kind"] == "missing":
        return (
            f"**unannotated {sugg}?** · segmenter confidence {pct(row['segmenter_suggested'])}, "
            f"classifier {pct(row['classifier_suggested'])} on the region"
        )
    return f"**{sugg}: mask off?** · overlap with the segmenter's region {pct(row['mask_iou'])}"


def _detector_evidence(row, said: str, sugg: str) -> str:
    """Where a detector's confident error points: at the annotation, or at the detector."""
    score = f"{float(row['detector_score']):.0%}"
    if row["kind"] == "wrong_label":
        return (
            f"**{said} → {sugg}?** · {row['evidence']} says {sugg} at {score} on this {said} and "
            f"found no {said} here: the label is wrong, or the detector takes {said} for {sugg}"
        )
    return (
        f"**unannotated {sugg}?** · {row['evidence']} says {sugg} at {score} where nothing is "
        "annotated: an object nobody annotated, or the detector seeing things"
    )


@dataclass(frozen=True)
class Detector:
    """A predictions file whose detections a card shows: the caches' key of it, its name, and
    the score under which its detections are not drawn."""

    key: caches.ScoredFile
    name: str
    min_score: float


@dataclass(frozen=True)
class ReviewPage:
    """What every card of the Mistakes page shares: the open dataset, the decisions made so far
    (by row key), and whose view a card shows beside the annotation: the segmenter's labels, or
    a detector's detections."""

    source: DatasetSource
    index: CocoIndex
    decisions: dict[str, reviews.Decision]
    segmenter: LoadedModel | None = None
    detector: Detector | None = None


def card(page: ReviewPage, row, key: str) -> None:
    """One suspected mistake: the annotation and the segmenter's view, the evidence, links and
    the decision buttons."""
    source, index = page.source, page.index
    decision = page.decisions.get(reviews.row_key(row))
    r = index.image_row(int(row["image_id"]))
    try:
        rgb, _ = overlays.load_image(Dataset(index, source.images_dir), r)
        seen, whose = _seen(page, rgb, row)
    except ExplorerError as e:
        st.warning(f"image {int(row['image_id'])}: {e}")
        return
    shown = overlays.AnnotatedObject(row["bbox"], _mask_of(index, row))
    left, right = overlays.object_views(rgb, shown, seen)
    a, b = st.columns(2)
    a.image(overlays.encode_jpeg(left), caption="annotation", output_format="JPEG")
    b.image(overlays.encode_jpeg(right), caption=whose, output_format="JPEG")
    st.markdown(f"{row['score']:.2f} · " + _evidence(row, names_of(index)))
    what = f"annotation {int(row['annotation_id'])}" if row["annotation_id"] >= 0 else "region"
    said = f" · **{decision}**" if decision else ""
    st.caption(f"{what} on image {int(row['image_id'])}{said}")
    c1, c2, c3 = st.columns(3)
    c1.page_link(
        "pages/browse.py", label="Browse", query_params={"image_id": str(int(row["image_id"]))}
    )
    k = reviews.row_key(row)
    c2.button("Not a mistake", key=f"{key}_no", on_click=_decide, args=(source, k, "reviewed"))
    c3.button("Confirm", key=f"{key}_yes", on_click=_decide, args=(source, k, "confirmed"))


def _seen(
    page: ReviewPage, rgb: np.ndarray, row
) -> tuple[overlays.PaintedLabels | np.ndarray | None, str]:
    """What the model beside the annotation saw on the image, and its name: the segmenter's
    labels, or the detector's detections drawn over the image.

    Raises:
        ExplorerError: the image cannot be read, or the predictions file is gone.
    """
    index = page.index
    if page.detector is not None:
        d = page.detector
        matches = caches.image_matches(d.key, d.min_score, int(row["image_id"]))
        # lines as thick after the card's crop shrinks to its side as on a whole image
        x0, y0, x1, y1 = crop_box(row["bbox"], rgb.shape[1], rgb.shape[0], 0.5)
        width = max(2, round(2 * max(x1 - x0, y1 - y0) / 200))
        layer = overlays.PredictionLayer(
            matches, caches.detections(d.key), index, tags=False, missed=False, width=width
        )
        size = (rgb.shape[1], rgb.shape[0])
        return overlays.draw_predictions(rgb, layer, size), f"detector {d.name}"
    if page.segmenter is None:
        return None, ""
    segmenter = page.segmenter
    image_row = index.image_row(int(row["image_id"]))
    _, out, _ = predict_image(segmenter, Dataset(index, page.source.images_dir), image_row)
    colours = overlays.label_colours(index, segmenter.category_of_label(index.categories))
    return (overlays.PaintedLabels(out[0], colours) if out is not None else None), "segmenter"


def cards(page: ReviewPage, shown: pd.DataFrame, key: str) -> None:
    """The rows, a page of cards at a time, in two columns (a page box when there are more)."""
    pages = max(1, -(-len(shown) // PER_PAGE))
    at = st.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page") if pages > 1 else 1
    chunk = shown.iloc[(at - 1) * PER_PAGE : at * PER_PAGE]
    columns = st.columns(2)
    for n, (_, row) in enumerate(chunk.iterrows()):
        with columns[n % 2].container(border=True):
            card(page, row, f"{key}_card_{(at - 1) * PER_PAGE + n}")


def pick_evidence(opened: tuple[PredictionsSource, ...], key: str) -> PredictionsSource | None:
    """Whose evidence the page lists: the classifier and segmenter pair (None), or an open
    predictions file's (a radio, shown only when one is open)."""
    if not opened:
        return None
    choices: list[PredictionsSource | None] = [None, *opened]
    chosen = st.radio(
        "Evidence",
        range(len(choices)),
        format_func=lambda i: (
            "classifier + segmenter" if choices[i] is None else f"detector: {opened[i - 1].name}"
        ),
        horizontal=True,
        key=key,
        help="A detector's confident errors point at annotations too: see the page's note",
    )
    return choices[chosen]


def detector_section(
    source: DatasetSource, index: CocoIndex, predictions: PredictionsSource, key: str
) -> None:
    """The suspects a predictions file's confident errors point to, as cards to decide on, and
    the export of those confirmed."""
    st.caption(detector_mistakes.__doc__.split("\n\n")[1].split(" These rows say which")[0])
    try:
        scored = caches.scored_file(
            source.annotations, source.images, predictions.path, predictions.kind
        )
        min_score = float(st.session_state.get(f"{key}_min", 0.5))  # the score filter's value
        with st.spinner(f"Finding the confident errors of {predictions.name}…", show_time=True):
            frame = caches.detector_suspects(scored, min_score)
    except ExplorerError as e:
        st.error(f"{predictions.name} cannot be read: {e}")
        return
    st.caption(
        f"{len(frame):,} suspects from {predictions.name}'s {predictions.kind} detections "
        f"scoring at least {min_score:.2f} (COCO's matching at IoU 0.5; TIDE's error causes)"
    )
    decisions = decisions_of(source)
    shown = filtered(frame, index, decisions, key)
    st.caption(f"{len(shown):,} {'suspect matches' if len(shown) == 1 else 'suspects match'}")
    st.markdown(
        "The detections beside each annotation (score ≥ the filter's): "
        + overlays.legend_markdown(overlays.outcome_legend(("TP", "FP", "ignored"))),
        unsafe_allow_html=True,
    )
    detector = Detector(scored, predictions.name, min_score)
    cards(ReviewPage(source, index, decisions, detector=detector), shown, key)
    st.subheader("Export")
    export_block(source, frame, decisions, f"{key}_export")


def segmenter_legend(index: CocoIndex, segmenter: LoadedModel) -> None:
    """The segmenter's colours (the right-hand views), one line."""
    colours = overlays.label_colours(index, segmenter.category_of_label(index.categories))
    labels = np.arange(len(segmenter.class_names))
    entries = overlays.legend(labels, colours, segmenter.class_names)
    st.markdown(
        "Segmenter colours: " + overlays.legend_markdown(entries) + " · annotation in yellow",
        unsafe_allow_html=True,
    )


_DECISION_ERROR = "q_decision_error"  # a failed decision (the page's prefix), told next run


def decisions_of(source: DatasetSource) -> dict[str, reviews.Decision]:
    """The decisions that apply to the open file, with a note on those that do not (made on
    another version of it) and the error of a decision that could not be saved."""
    failed = st.session_state.pop(_DECISION_ERROR, None)
    if failed:
        st.error(failed)
    try:
        found = reviews.read(source.annotations)
    except ExplorerError as e:
        st.error(str(e))
        return {}
    if found.note:
        st.warning(found.note)
    return found.decisions


def _decide(source: DatasetSource, row_key: str, decision: reviews.Decision) -> None:
    # a button callback: its error is kept for the run that follows, which shows it
    try:
        reviews.toggle(source.annotations, row_key, decision)
    except ExplorerError as e:
        st.session_state[_DECISION_ERROR] = str(e)


def export_block(source: DatasetSource, frame: pd.DataFrame, decisions: dict, key: str) -> None:
    """Write the confirmed fixes as a corrected copy of the annotation file (a new file)."""
    fixes = reviews.confirmed_fixes(frame, decisions)
    original = Path(source.annotations)
    st.caption(
        f"{len(fixes)} confirmed fixes; decisions are kept in {reviews.reviews_path(original)} "
        f"(the annotation file is never changed, and no existing file is overwritten)"
    )
    name = st.text_input(
        "New file name (next to the annotation file)",
        f"{original.stem}.corrected.json",
        key=f"{key}_name",
    )
    if not st.button("Write the corrected file", key=f"{key}_write", disabled=not fixes):
        return
    if not name or Path(name).name != name or not name.endswith(".json"):
        st.error(f"{name!r}: a file name ending in .json, without folders")
        return
    try:
        done = write_corrected(original, fixes, original.parent / name)
    except ExplorerError as e:
        st.error(str(e))
        return
    lost = f"; not found: {done['not_found']}" if done["not_found"] else ""
    st.success(
        f"Wrote {done['path']}: {done['relabelled']} relabelled, {done['remasked']} new masks, "
        f"{done['added']} added{lost}"
    )
