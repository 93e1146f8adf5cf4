"""The Anatomy page's table and figures: a network's layers, its feature maps, one ReLU, the
softmax."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT

if TYPE_CHECKING:
    from explorer.models.anatomy import Layer  # torch: only for the types


def layer_table(rows: list[Layer]) -> pd.DataFrame:
    """The Anatomy page's layer table: one row per layer of ``models.anatomy.layer_table``
    (shapes as H x W x C, like the darknet table)."""

    def shape(s: tuple) -> str:
        return " x ".join(map(str, s[1:] + s[:1])) if len(s) == 3 else str(s[0])

    return pd.DataFrame(
        [
            {
                "#": i,
                "layer": r.describe().split()[0],
                "module": r.name,
                "input": shape(r.in_shape),
                "output": shape(r.out_shape),
                "params": r.params,
                "MACs": r.macs,
                "folded": ", ".join(r.folded),
            }
            for i, r in enumerate(rows)
        ]
    )


def feature_map_sizes(maps: list[tuple[int, Layer]]) -> go.Figure:
    """Pixels per feature map (log) and channels by layer index: maps shrink while channels grow."""
    fig = go.Figure()
    x = [i for i, _ in maps]
    fig.add_scatter(
        x=x, y=[r.out_shape[1] * r.out_shape[2] for _, r in maps], name="H x W (pixels)"
    )
    fig.add_scatter(x=x, y=[r.out_shape[0] for _, r in maps], name="channels", yaxis="y2")
    channels = {
        "title": "channels",
        "overlaying": "y",
        "side": "right",
        "type": "linear",
        "rangemode": "tozero",
        "showgrid": False,
        "tickmode": "linear",
        "dtick": 64 * max(1, -(-max((r.out_shape[0] for _, r in maps), default=0) // 512)),
        "automargin": True,
    }
    fig.update_layout(
        title="Feature-map size shrinks while channels grow",
        xaxis_title="layer",
        yaxis={"title": "H x W", "type": "log", "dtick": 1, "automargin": True},
        yaxis2=channels,
        legend={"orientation": "h", "y": -0.25},
        **LAYOUT,
    )
    # the right axis' labels (up to 4 digits) need room: the shared margin of 10 px cut "384"
    fig.update_layout(margin={"l": 10, "r": 70, "t": 40, "b": 10})
    return fig


def relu_histogram(before: np.ndarray, after: np.ndarray) -> go.Figure:
    """Values of one channel before and after ReLU, overlaid."""
    fig = go.Figure()
    fig.add_histogram(x=before.ravel(), name="before", opacity=0.6)
    fig.add_histogram(x=after.ravel(), name="after", opacity=0.6)
    negative = float((before < 0).mean()) if before.size else 0.0
    fig.update_layout(
        barmode="overlay", title=f"{negative:.0%} of the values were negative", **LAYOUT
    )
    return fig


def softmax_bars(names: list[str], probs: list[float]) -> go.Figure:
    """A classifier's most probable classes, the most probable on top."""
    fig = go.Figure(go.Bar(x=probs[::-1], y=names[::-1], orientation="h"))
    fig.update_layout(
        title=f"softmax: the top {len(names)} classes", xaxis={"range": [0, 1]}, **LAYOUT
    )
    return fig
