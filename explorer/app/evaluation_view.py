"""The Evaluate page's parts: one function per component, each under its own widget key.

A :class:`Scored` file (its records and COCO's evaluation of them, from the cached getters) is
what every component draws from; the error analysis is computed when a component first asks.
Clicks lead to Browse: a category's bar to its images, a confusion cell to the images of the
objects and detections it counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import caches, state
from explorer.coco import CocoIndex
from explorer.coco.sources import DatasetSource
from explorer.coco.view_state import (
    DEFAULT_MIN_SCORE,
    BrowseState,
    browse_to_query,
    frame_params,
)
from explorer.errors import ExplorerError
from explorer.evaluation import compare, errors, report
from explorer.evaluation.cocoeval import Evaluation
from explorer.predictions.results import Detections
from explorer.predictions.sources import PredictionsSource, predictions_key
from explorer.types import ResultKind
from explorer.viz.figures import evaluation as figures

BROWSE = "pages/browse.py"


@dataclass(frozen=True)
class Scored:
    """One predictions file scored on the open dataset.

    Attributes:
        predictions: the file.
        key: the caches' key (dataset, file stamps, kind).
        detections: its records of the kind scored (what was skipped, and why, included).
        evaluation: COCO's evaluation of them.
        names: the evaluated categories' names (``evaluation.category_ids`` order).
        index: the dataset.
    """

    predictions: PredictionsSource
    key: caches.ScoredFile
    detections: Detections
    evaluation: Evaluation
    names: list[str]
    index: CocoIndex


def no_predictions(key: str) -> None:
    """What to do when no predictions file is open (an info, not an error)."""
    st.info(
        "No predictions are open. Add a COCO results file (a JSON list of detections computed "
        "on this dataset) under **Predictions → Add predictions…** in the sidebar, or start the "
        "app with it: `streamlit run app.py -- --coco GT.json --images DIR --predictions "
        "[NAME=]DT.json` (repeat `--predictions` for several).",
        icon=":material/info:",
    )


def pick_predictions(opened: tuple[PredictionsSource, ...], key: str) -> PredictionsSource:
    """The file to evaluate: the only one, or one chosen by name."""
    if len(opened) == 1:
        return opened[0]
    names = [p.name for p in opened]
    if st.session_state.get(key) not in names:
        st.session_state[key] = names[0]
    chosen = st.selectbox("Predictions", names, key=key)
    return opened[names.index(chosen)]


def pick_kind(predictions: PredictionsSource, key: str) -> ResultKind:
    """What to score the file as: one of the kinds its records carry."""
    kinds = list(predictions.kinds)
    if st.session_state.get(key) not in kinds:
        st.session_state[key] = kinds[0]
    if len(kinds) == 1:
        return kinds[0]
    return st.radio("Score as (IoU type)", kinds, horizontal=True, key=key)


def scored(
    source: DatasetSource, index: CocoIndex, predictions: PredictionsSource, kind: ResultKind
) -> Scored | None:
    """The file read and evaluated (cached; seconds on a val2017-size file, said meanwhile);
    None, and one error line, when it cannot be."""
    try:
        key = caches.scored_file(source.annotations, source.images, predictions.path, kind)
        with st.spinner(f"Reading the predictions {predictions.name}…", show_time=True):
            found = caches.detections(key)
        with st.spinner(
            f"Evaluating {len(found):,} {kind} results of {predictions.name} on {source.label} "
            "as COCO does…",
            show_time=True,
        ):
            evaluation = caches.evaluation(key)
    except ExplorerError as e:
        st.error(f"{predictions.name} cannot be evaluated: {e}")
        return None
    names = {c["id"]: c["name"] for c in index.categories}
    return Scored(
        predictions,
        key,
        found,
        evaluation,
        [names.get(int(c), str(c)) for c in evaluation.category_ids],
        index,
    )


def _error_analysis(result: Scored) -> errors.ErrorAnalysis:
    with st.spinner("Finding why each wrong detection is wrong…", show_time=True):
        return caches.error_analysis(result.key)


def _iou_text(iou: float | None) -> str:
    """A summary row's IoU as COCO's papers write it: .50:.95 (averaged), .50, .75."""
    return ".50:.95" if iou is None else f"{iou:.2f}".lstrip("0")


def _value(value: float) -> str:
    return "–" if value < 0 else f"{value:.3f}"


def skipped_line(detections: Detections) -> str:
    """``N records skipped: reasons`` (empty when none was)."""
    if not detections.num_skipped:
        return ""
    reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(detections.skipped.items()))
    return f"{detections.num_skipped:,} records skipped: {reasons}"


def summary_labels(rows: list) -> list[str]:
    """Short names of pycocotools' summary rows: AP, AP50, AP small, AR@10... (the maxDets only
    where it tells rows apart)."""
    bases = [
        f"{r.measure}{'' if r.iou is None else round(r.iou * 100)}"
        + ("" if r.area == "all" else f" {r.area}")
        for r in rows
    ]
    return [
        f"{base}@{r.max_dets}" if bases.count(base) > 1 else base
        for base, r in zip(bases, rows, strict=True)
    ]


def summary(result: Scored, key: str) -> None:
    """pycocotools' summary (12 numbers; 10 for keypoints), readable, to 3 decimals; the
    records skipped."""
    rows = result.evaluation.summary()
    labels = summary_labels(rows)
    head = st.container(horizontal=True, key=f"{key}_metrics")
    for label, row in zip(labels[:3], rows[:3], strict=True):
        head.metric(label, _value(row.value), border=True, width="content")
    table = pd.DataFrame(
        {
            "": labels,
            "IoU": [_iou_text(r.iou) for r in rows],
            "area": [r.area for r in rows],
            "detections per image": [r.max_dets for r in rows],
            "value": [_value(r.value) for r in rows],
        }
    )
    st.table(table.set_index(""))
    dets = result.detections
    none = " · –: no object of that size" if any(r.value < 0 for r in rows) else ""
    st.caption(
        f"{len(dets):,} {result.key.kind} results on {len(result.evaluation.layout.image_ids):,} "
        f"images{none}"
    )
    if line := skipped_line(dets):
        st.warning(line, icon=":material/filter_alt_off:")


def _open_in_browse(result: Scored, view: BrowseState) -> None:
    """Browse on ``view``, drawing this file at the page's threshold (the address says both: an
    address is the view it names)."""
    drawn = view.with_(
        predictions=predictions_key(result.predictions), min_score=state.score_threshold()
    )
    st.switch_page(BROWSE, query_params=browse_to_query(drawn))


def category_ap(result: Scored, key: str) -> None:
    """AP per category as bars; a click opens Browse on that category's images."""
    evaluation = result.evaluation
    event = st.plotly_chart(
        figures.category_ap_bars(
            result.names,
            evaluation.category_ids,
            evaluation.category_ap(),
            "AP@[.50:.95] per category",
        ),
        key=key,
        on_select="rerun",
        selection_mode="points",
    )
    picked = figures.clicked(event.selection if event else None)
    if picked:
        _open_in_browse(result, BrowseState(categories=(int(picked[0]),)))


def mean_pr_curves(result: Scored, key: str) -> None:
    """Precision-recall curves averaged over the categories with objects, at IoU 0.5, 0.75 and
    averaged over .50:.95."""
    evaluation = result.evaluation
    st.plotly_chart(
        figures.pr_curves(
            evaluation.params.recall_thresholds,
            _curves(evaluation, None),
            "Precision and recall, all categories (mean)",
        ),
        key=key,
    )


def category_pr_curves(result: Scored, key: str) -> None:
    """The same curves for one chosen category (of those with objects)."""
    evaluation = result.evaluation
    with_truth = np.flatnonzero(evaluation.category_ap() > -1)
    if not len(with_truth):
        return
    k = st.selectbox(
        "Category",
        with_truth.tolist(),
        format_func=lambda i: result.names[i],
        key=f"{key}_category",
    )
    title = f"Precision and recall, {result.names[int(k)]}"
    st.plotly_chart(
        figures.pr_curves(evaluation.params.recall_thresholds, _curves(evaluation, int(k)), title),
        key=f"{key}_chart",
    )


def _curves(evaluation: Evaluation, category: int | None) -> dict[str, np.ndarray]:
    curves = {
        f"IoU {t:.2f}": report.pr_curve(evaluation, t, category)
        for t in (0.5, 0.75)
        if np.isclose(evaluation.params.iou_thresholds, t).any()
    }
    return {**curves, "IoU .50:.95 (mean)": report.pr_curve_mean(evaluation, category)}


def score_threshold(
    result: Scored, key: str, label: str = "Score threshold", shared: bool = False
) -> float:
    """The score below which detections are dropped for the counts and the confusion matrix;
    ``shared``: the threshold Browse's predictions layer uses too (``state.score_threshold``)."""
    top = max(1.0, float(np.ceil(result.evaluation.layout.dt_score.max(initial=0.0))))
    if shared:
        state.start_score_slider(key, top)
    elif key not in st.session_state:
        st.session_state[key] = min(DEFAULT_MIN_SCORE, top)
    value = st.slider(
        label,
        0.0,
        top,
        step=0.01,
        key=key,
        help="Detections scoring below it are dropped: the counts, precision and recall below "
        "and the confusion matrix follow it (AP does not: it sweeps every threshold)"
        + (", and Browse draws only those above it." if shared else "."),
    )
    if shared:
        state.set_score_threshold(value)
    return value


def counts(result: Scored, min_score: float, key: str) -> None:
    """TP, FP, FN, precision and recall at the threshold (IoU 0.5), overall and per category,
    with each category's F1-best threshold."""
    evaluation = result.evaluation
    at = report.counts_at(evaluation, min_score)
    tp, fp, fn = (
        int(at[k].sum()) for k in ("true_positives", "false_positives", "false_negatives")
    )
    row = st.container(horizontal=True, key=f"{key}_metrics")
    for label, value in (("TP", f"{tp:,}"), ("FP", f"{fp:,}"), ("FN", f"{fn:,}")):
        row.metric(label, value, border=True, width="content")
    row.metric("precision", f"{tp / max(tp + fp, 1):.3f}", border=True, width="content")
    row.metric("recall", f"{tp / max(tp + fn, 1):.3f}", border=True, width="content")
    st.dataframe(
        category_table(result, min_score),
        hide_index=True,
        key=f"{key}_table",
        height=38 + 35 * min(len(result.names), 12),
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in ("AP", "AP50", "AP75", "AR", "precision", "recall", "F1-best score", "F1")
        },
    )
    st.caption(
        f"At IoU 0.5 and score ≥ {min_score:.2f}. F1-best score: the threshold where the "
        "category's F1 (of the interpolated precision and recall) is highest, and that F1."
    )


def category_table(result: Scored, min_score: float) -> pd.DataFrame:
    """One row per evaluated category: COCO's numbers, the counts at ``min_score`` (IoU 0.5)
    and the F1-best threshold (blank where there is no ground truth)."""
    evaluation = result.evaluation
    rows = pd.DataFrame(report.category_rows(evaluation, result.index))
    at = report.counts_at(evaluation, min_score)
    best = report.f1_best(evaluation)
    tp, fp, fn = at["true_positives"], at["false_positives"], at["false_negatives"]
    table = pd.DataFrame(
        {
            "category": result.names,
            "AP": rows["ap"].where(rows["ap"] >= 0),  # -1: no ground truth, left blank
            "AP50": rows["ap50"].where(rows["ap50"] >= 0),
            "AP75": rows["ap75"].where(rows["ap75"] >= 0),
            "AR": rows["ar"].where(rows["ar"] >= 0),
            "objects": rows["ground_truths"],
            "detections": rows["detections"],
            "TP": tp,
            "FP": fp,
            "FN": fn,
            "precision": tp / np.maximum(tp + fp, 1),
            "recall": np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan),
            "F1-best score": best["score"],
            "F1": best["f1"],
        }
    )
    return table


SHOWN_CATEGORIES = 20  # the confusion matrix's rows and columns at first: the most errors


def _cell_label(result: Scored, row: int, column: int) -> str:
    n_cat = len(result.names)
    name = (*result.names, "background")
    if row == column:
        return f"{name[row]} found"
    if column == n_cat:
        return f"{name[row]} missed"
    if row == n_cat:
        return f"{name[column]} on background"
    return f"{name[row]} taken for {name[column]}"


def confusion(result: Scored, min_score: float, key: str) -> None:
    """The confusion matrix at the threshold, on the categories with the most errors (others
    can be chosen) and background; a click on a cell, or the list of the largest errors, opens
    Browse on the images of what it counts."""
    analysis = _error_analysis(result)
    matrix = errors.confusion(result.evaluation, analysis, min_score)
    ranked = errors.categories_by_errors(matrix.matrix)
    first = ranked[:SHOWN_CATEGORIES].tolist()
    with st.expander(f"Categories in the matrix: {len(first)} of {len(ranked)}, most errors first"):
        chosen = st.multiselect(
            "Categories",
            ranked.tolist(),
            default=first,
            format_func=lambda i: result.names[i],
            key=f"{key}_categories",
            help="At first those with the most errors; background is always shown.",
        )
    shown = np.array([*sorted(chosen, key=ranked.tolist().index), len(result.names)])
    labels = [*(result.names[i] for i in shown[:-1]), "background"]
    figure = figures.confusion_matrix(
        matrix.matrix[np.ix_(shown, shown)], labels, labels, (shown, shown)
    )
    event = st.plotly_chart(
        figure,
        key=f"{key}_chart",
        on_select="rerun",
        selection_mode="points",
    )
    st.caption(
        f"Score ≥ {min_score:.2f}. {len(chosen)} of {len(ranked)} categories shown. Diagonal: "
        "objects found; last column: objects missed; last row: detections on no object."
    )
    picked = figures.clicked(event.selection if event else None)
    if picked and len(picked) == 2:
        _open_cell(result, matrix, int(picked[0]), int(picked[1]))
    _largest_errors(result, matrix, key)


def _open_cell(result: Scored, matrix: errors.Confusion, row: int, column: int) -> None:
    ids = errors.cell_image_ids(result.evaluation, matrix, row, column)
    if len(ids):
        _open_in_browse(result, BrowseState(image_ids=tuple(int(i) for i in ids)))


def _largest_errors(result: Scored, matrix: errors.Confusion, key: str) -> None:
    """The largest off-diagonal cells, one to open in Browse."""
    counts = matrix.matrix.copy()
    np.fill_diagonal(counts, 0)
    flat = np.argsort(-counts, axis=None, kind="stable")[:15]
    cells = [divmod(int(f), counts.shape[1]) for f in flat if counts.flat[f] > 0]
    if not cells:
        return
    row = st.container(horizontal=True, vertical_alignment="bottom", key=f"{key}_open")
    cell = row.selectbox(
        "Largest errors",
        cells,
        format_func=lambda rc: f"{_cell_label(result, *rc)}: {counts[rc]:,}",
        key=f"{key}_cell",
        width=420,
    )
    if row.button("Browse their images", key=f"{key}_browse"):
        _open_cell(result, matrix, *cell)


def error_breakdown(result: Scored, key: str) -> None:
    """How many detections of each error cause (objects, for missed), what fixing each costs
    in AP@0.5, and what each means."""
    analysis = _error_analysis(result)
    found = analysis.counts()
    st.plotly_chart(figures.error_bars(found, analysis.delta_ap), key=f"{key}_chart")
    st.markdown(
        "\n".join(
            f"- **{cause}** ({found[cause]:,}, +{analysis.delta_ap[cause]:.3f} AP@0.5 if "
            f"fixed): {errors.EXPLANATIONS[cause]}"
            for cause in found
        )
    )
    st.caption(
        f"AP@0.5 as evaluated: {analysis.ap50:.3f}. Each gain is that kind of error fixed alone "
        "(TIDE's dAP on COCO's matching, all detections kept)."
    )


CHANGED_IMAGES = 10  # images listed as better, and as worse


def side_by_side(
    source: DatasetSource,
    index: CocoIndex,
    opened: tuple[PredictionsSource, ...],
    kind: ResultKind,
    key: str,
) -> None:
    """Two predictions files of this dataset: AP per category of both, and the images that
    got better or worse from A to B (true positives at IoU 0.5, each at its own threshold);
    both scored as ``kind`` when both can be."""
    names = [p.name for p in opened]
    left, right = st.columns(2)
    a = opened[names.index(left.selectbox("A", names, index=0, key=f"{key}_a"))]
    b = opened[names.index(right.selectbox("B", names, index=1, key=f"{key}_b"))]
    kinds = [k for k in a.kinds if k in b.kinds]
    if a == b or not kinds:
        st.info("Choose two files that can be scored alike (bbox, segm or keypoints).")
        return
    pair = [scored(source, index, p, kind if kind in kinds else kinds[0]) for p in (a, b)]
    if pair[0] is None or pair[1] is None:
        return
    with left:
        first = score_threshold(pair[0], f"{key}_score_a", f"Score threshold of {a.name}")
    with right:
        second = score_threshold(pair[1], f"{key}_score_b", f"Score threshold of {b.name}")
    thresholds = (first, second)
    _compared_categories(pair[0], pair[1], key)
    _changed_images(pair[0], pair[1], thresholds, key)


COMPARED_CATEGORIES = 30  # the categories drawn side by side: those whose AP changed most


def _compared_categories(a: Scored, b: Scored, key: str) -> None:
    changes = compare.category_changes(a.evaluation, b.evaluation)
    names = {c["id"]: c["name"] for c in a.index.categories}
    labels = [names.get(int(c), str(c)) for c in changes["category_id"]]
    overall = [s.evaluation.stats[0] for s in (a, b)]
    st.caption(
        f"AP@[.50:.95]: {a.predictions.name} {_value(overall[0])}, {b.predictions.name} "
        f"{_value(overall[1])} (change {overall[1] - overall[0]:+.3f})."
    )
    left, right = st.columns([1.2, 1], gap="large")
    left.plotly_chart(
        figures.compare_ap_dots(
            labels,
            changes["ap_a"],
            changes["ap_b"],
            (a.predictions.name, b.predictions.name),
            COMPARED_CATEGORIES,
        ),
        key=f"{key}_ap",
    )
    table = pd.DataFrame(
        {
            "category": labels,
            a.predictions.name: np.where(changes["ap_a"] > -1, changes["ap_a"], np.nan),
            b.predictions.name: np.where(changes["ap_b"] > -1, changes["ap_b"], np.nan),
            "change": changes["change"],
        }
    ).sort_values("change", ascending=False)
    right.dataframe(
        table,
        hide_index=True,
        key=f"{key}_ap_table",
        height=38 + 35 * min(len(table), 16),
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in (a.predictions.name, b.predictions.name)
        }
        | {"change": st.column_config.NumberColumn(format="%+.3f")},
    )


def _changed_images(a: Scored, b: Scored, thresholds: tuple[float, float], key: str) -> None:
    changes = compare.image_changes(
        report.image_counts(a.evaluation, thresholds[0]),
        report.image_counts(b.evaluation, thresholds[1]),
    )
    frame = frame_params(st.query_params.to_dict())
    left, right = st.columns(2)
    name = b.predictions.name
    for col, better, title in ((left, True, "Better"), (right, False, "Worse")):
        rows = compare.most_changed(changes, CHANGED_IMAGES, better)
        col.markdown(f"**{title} in {name}** ({len(rows)} shown)")
        col.dataframe(
            changed_table(a.index, changes, rows, frame),
            hide_index=True,
            key=f"{key}_{'better' if better else 'worse'}",
            column_config={"open": st.column_config.LinkColumn("open", display_text="Browse")},
        )
    st.caption(
        f"Per image, A = {a.predictions.name}, B = {name}: detections above each file's "
        "threshold that found an object (TP) and that found none (FP), at IoU 0.5; ordered by "
        "the TPs gained or lost."
    )


def changed_table(
    index: CocoIndex, changes: compare.ImageChange, rows: np.ndarray, frame: dict[str, str]
) -> pd.DataFrame:
    """The images at ``rows`` of ``changes``, each with a link that opens it in Browse (the
    address's dataset and predictions keys kept; ``index`` names images as the file wrote
    them)."""
    from urllib.parse import urlencode

    ids = changes["image_id"][rows]
    return pd.DataFrame(
        {
            "image": [index.image_label(i) for i in ids.tolist()],
            "objects": changes["objects"][rows],
            "TP A": changes["tp_a"][rows],
            "TP B": changes["tp_b"][rows],
            "FP A": changes["fp_a"][rows],
            "FP B": changes["fp_b"][rows],
            "open": [f"./?{urlencode({**frame, 'image_id': str(i)})}" for i in ids.tolist()],
        }
    )
