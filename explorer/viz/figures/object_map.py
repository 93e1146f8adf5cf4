"""The object map's figure (the Map page): every object a point, coloured by a group or a
number, with the neighbours of the chosen one ringed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT
from explorer.viz.overlays import hex_colour, palette


@dataclass(frozen=True)
class MapColouring:
    """How the object map colours its points: by group (``codes`` into ``names``, a legend) or
    by a number (``values``, a colour bar; ``log``: its log10)."""

    title: str
    codes: np.ndarray | None = None  # int per point
    names: dict[int, str] | None = None  # code -> legend name, in legend order
    colours: dict[int, str] | None = None  # code -> colour (default: the palette)
    values: np.ndarray | None = None  # float per point
    log: bool = False


def object_map_figure(
    points: pd.DataFrame, colouring: MapColouring, highlight: pd.DataFrame | None = None
) -> go.Figure:
    """The object map: one WebGL scatter of ``points`` (columns x, y, annotation_id, image_id,
    area, category) with ``customdata`` = annotation id, coloured by ``colouring``; a legend of
    empty traces for groups; ``highlight`` (rows like ``points``) drawn on top, bigger.

    The axes mean nothing (a projection): no ticks, one unit as long across as up. No drag mode is
    set: Streamlit then pans and a click selects its point (in box or lasso mode a click does not
    select). The layout's
    ``meta`` is ``"object-map"`` (the hover thumbnails find the chart by it)."""
    fig = go.Figure()
    fig.add_trace(_points_trace(points, _map_marker(colouring), "objects", showlegend=False))
    groups = colouring.names if colouring.values is None and colouring.names else {}
    colours = _group_colours(colouring) if groups else {}
    for code, name in groups.items():
        fig.add_trace(  # legend only: the points are all in the first trace
            go.Scattergl(
                x=[None], y=[None], mode="markers", name=name, marker={"color": colours[code]}
            )
        )
    if highlight is not None and len(highlight):
        _add_highlight(fig, highlight)
    _map_layout(fig, colouring)
    return fig


def _map_hover(points: pd.DataFrame) -> np.ndarray:
    return (
        points["category"].astype(str)
        + "<br>annotation "
        + points["annotation_id"].astype(str)
        + " · image "
        + points["image_id"].astype(str)
        + "<br>area "
        + points["area"].round(0).astype(np.int64).map("{:,}".format)
    ).to_numpy()


def _group_colours(c: MapColouring) -> dict[int, str]:
    if c.colours:
        return c.colours
    codes = list(c.names or {})
    return {k: hex_colour(rgb) for k, rgb in zip(codes, palette(len(codes)), strict=True)}


def _map_marker(c: MapColouring) -> dict:
    if c.values is not None:
        v = np.log10(np.maximum(c.values, 1.0)) if c.log else c.values
        title = f"{c.title} (log10)" if c.log else c.title
        return {
            "size": 5,
            "color": v,
            "colorscale": "Viridis",
            "colorbar": {"title": {"text": title}, "thickness": 12},
            "opacity": 0.8,
        }
    colours = _group_colours(c)
    codes = np.zeros(0, int) if c.codes is None else c.codes
    lookup = np.array([colours.get(int(k), "#999999") for k in np.unique(codes)], dtype=object)
    per_point = lookup[np.searchsorted(np.unique(codes), codes)] if len(codes) else []
    return {"size": 5, "color": per_point, "opacity": 0.8}


def _points_trace(rows: pd.DataFrame, marker: dict, name: str, **kw) -> go.Scattergl:
    """Map rows as WebGL markers whose customdata is the annotation id (what a selection
    returns and the hover thumbnails look up)."""
    return go.Scattergl(
        x=rows["x"].to_numpy(),
        y=rows["y"].to_numpy(),
        mode="markers",
        customdata=rows["annotation_id"].to_numpy(),
        hovertext=_map_hover(rows),
        hoverinfo="text",
        marker=marker,
        name=name,
        **kw,
    )


def _add_highlight(fig: go.Figure, rows: pd.DataFrame) -> None:
    ring = {"size": 13, "color": "rgba(0,0,0,0)", "line": {"color": "#111111", "width": 2}}
    fig.add_trace(_points_trace(rows, ring, "more like this"))


def _map_layout(fig: go.Figure, c: MapColouring) -> None:
    hidden = {"showticklabels": False, "showgrid": False, "zeroline": False, "title": None}
    fig.update_layout(
        **LAYOUT,
        height=640,
        meta="object-map",
        hovermode="closest",
        legend={"title": {"text": c.title}, "itemsizing": "constant", "x": 1.02, "y": 1},
        xaxis=hidden,
        yaxis={**hidden, "scaleanchor": "x", "scaleratio": 1},
    )
