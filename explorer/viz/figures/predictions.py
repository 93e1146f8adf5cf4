"""What a model says and how well it scores: a classifier's top-k on one image and accuracy per
category (Classify), a segmenter's confusion matrix and IoU per class (Segment)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT

if TYPE_CHECKING:
    from explorer.inference.classification import CategoryAccuracy


def topk_bars(labels: list[str], probs: list[float], mapped: list[str], title: str) -> go.Figure:
    """Top-k probabilities, best on top; each bar says what it maps to in the dataset."""
    text = [f"→ {m}" if m else "→ no counterpart" for m in mapped]
    fig = go.Figure(
        go.Bar(
            x=probs[::-1],
            y=labels[::-1],
            orientation="h",
            text=text[::-1],
            textposition="auto",
            marker_color=["#2ca02c" if m else "#9e9e9e" for m in mapped[::-1]],
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title, xaxis={"title": "probability", "range": [0, 1]}, height=320, **LAYOUT
    )
    return fig


def accuracy_by_category(acc: CategoryAccuracy) -> go.Figure:
    """Top-1 accuracy per true category, most frequent first."""
    names, right, total = acc.names, acc.right, acc.total
    order = np.argsort(-total, kind="stable")
    share = np.where(total > 0, right / np.maximum(total, 1), 0.0)
    fig = go.Figure(
        go.Bar(
            x=[names[i] for i in order],
            y=share[order],
            customdata=np.stack([right, total], 1)[order],
            marker_color="#4292c6",
            hovertemplate="%{x}: %{y:.2f} (%{customdata[0]} of %{customdata[1]})<extra></extra>",
        )
    )
    fig.update_layout(
        title="Accuracy per true category",
        yaxis={"range": [0, 1], "title": "accuracy"},
        xaxis_tickangle=-45,
        **LAYOUT,
    )
    return fig


def confusion_heatmap(names: list[str], conf: np.ndarray, normalise: bool = True) -> go.Figure:
    """Rows = truth, columns = prediction; normalised per row (recall) by default."""
    conf = np.asarray(conf, np.float64)
    z = conf / np.maximum(conf.sum(1, keepdims=True), 1) if normalise else conf
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            colorscale="Blues",
            customdata=conf,
            hovertemplate="truth %{y}, predicted %{x}: %{customdata:,.0f} px<extra></extra>",
        )
    )
    fig.update_layout(
        title="Confusion matrix (rows: truth, normalised)",
        xaxis_title="predicted",
        yaxis_title="truth",
        yaxis_autorange="reversed",
        **LAYOUT,
    )
    return fig


def iou_bars(per_class: dict[str, float | None], title: str = "IoU per class") -> go.Figure:
    items = [(k, v) for k, v in per_class.items() if v is not None]
    items.sort(key=lambda kv: -kv[1])
    fig = go.Figure(
        go.Bar(
            x=[k for k, _ in items],
            y=[v for _, v in items],
            marker_color="#4292c6",
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=title, yaxis={"range": [0, 1], "title": "IoU"}, xaxis_tickangle=-45, **LAYOUT
    )
    return fig
