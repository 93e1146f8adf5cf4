"""The Compare page's figures: a classifier and a segmenter on the same objects (the
:class:`explorer.inference.compare.Report`'s parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT, two_line_title

if TYPE_CHECKING:
    from explorer.inference.compare import ModelConfusion, Outcome, SizeAccuracy
    from explorer.types import SizeClass


OUTCOME_COLOURS: dict[Outcome, str] = {
    "both_right": "#2ca02c",
    "only_classifier_right": "#1f77b4",
    "only_segmenter_right": "#ff7f0e",
    "both_wrong": "#d62728",
    "not_comparable": "#bdbdbd",
}


def agreement_by_category(per_category: dict[str, dict[Outcome, int]]) -> go.Figure:
    """Stacked bars: for each true category, how many objects fall in each outcome."""
    cats = sorted(per_category, key=lambda c: -sum(per_category[c].values()))
    fig = go.Figure()
    for outcome, colour in OUTCOME_COLOURS.items():
        fig.add_bar(
            x=cats,
            y=[per_category[c][outcome] for c in cats],
            name=outcome.replace("_", " "),
            marker_color=colour,
        )
    fig.update_layout(
        title="Agreement per true category", barmode="stack", xaxis_tickangle=-45, **LAYOUT
    )
    return fig


def model_confusion(conf: ModelConfusion) -> go.Figure:
    """Counts of (classifier answer, segmenter answer) over comparable objects."""
    fig = go.Figure(
        go.Heatmap(
            z=conf["counts"],
            x=conf["segmenter"],
            y=conf["classifier"],
            colorscale="Blues",
            hovertemplate="classifier %{y}, segmenter %{x}: %{z} objects<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="segmenter says",
        yaxis_title="classifier says",
        yaxis_autorange="reversed",
        **two_line_title("Classifier versus segmenter", "comparable objects"),
    )
    return fig


def accuracy_by_size(by_size: dict[SizeClass, SizeAccuracy]) -> go.Figure:
    sizes = list(by_size)
    fig = go.Figure()
    series: tuple[tuple[Literal["classifier_acc", "segmenter_acc"], str, str], ...] = (
        ("classifier_acc", "classifier", "#1f77b4"),
        ("segmenter_acc", "segmenter", "#ff7f0e"),
    )
    for key, name, colour in series:
        fig.add_bar(
            x=sizes,
            y=[by_size[s][key] or 0 for s in sizes],
            name=name,
            marker_color=colour,
            customdata=[by_size[s]["objects"] for s in sizes],
            hovertemplate="%{x}: %{y:.2f} of %{customdata} objects<extra>" + name + "</extra>",
        )
    fig.update_layout(
        barmode="group",
        yaxis={"range": [0, 1]},
        **two_line_title("Accuracy by object size", "COCO small / medium / large"),
    )
    return fig
