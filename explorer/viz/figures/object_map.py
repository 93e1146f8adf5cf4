"""The object map's figure (the Map page): every object a point, coloured by a group or a
number, with the neighbours of the chosen one ringed; and what the page draws of a map: the
points (a seeded sample above :data:`MAX_POINTS`), their colouring, captions, and the selection
read back as annotation ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.inference.classification import AGREES, DISAGREES, NO_LABEL
from explorer.viz.figures.layout import LAYOUT
from explorer.viz.overlays import hex_colour, palette

if TYPE_CHECKING:
    from explorer.inference.embeddings import ObjectMap

MAX_POINTS = 50_000  # drawn at most (a seeded sample above); neighbours use every object
SEED = 0
BY_CATEGORY, BY_SIZE, BY_AGREEMENT, BY_MISTAKE = (
    "category",
    "object size",
    "model agreement",
    "mistake score",
)


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
    per_point: np.ndarray | list[str] = (
        lookup[np.searchsorted(np.unique(codes), codes)] if len(codes) else []
    )
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
        legend=_legend(c),
        xaxis=hidden,
        yaxis={**hidden, "scaleanchor": "x", "scaleratio": 1},
    )


def _legend(c: MapColouring) -> dict:
    """Groups: their legend at the right, titled. A number: its colour bar takes the right, so
    the legend (the "more like this" ring alone) goes in one row above the plot."""
    if c.values is None:
        return {"title": {"text": c.title}, "itemsizing": "constant", "x": 1.02, "y": 1}
    return {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom"}


# -- what the page draws of a map ----------------------------------------------------------------


def sample_rows(n: int, limit: int = MAX_POINTS) -> np.ndarray:
    """The map rows drawn: all of them up to ``limit``, else a seeded sample (sorted)."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(SEED).choice(n, limit, replace=False))


def sample_caption(shown: int, total: int) -> str | None:
    """What the chart shows when it is a sample (None when it shows everything)."""
    if shown >= total:
        return None
    return f"showing {shown:,} of {total:,} objects, a seeded sample (neighbours use all)"


def hover_caption(made: int, wanted: int, drawn: int) -> str | None:
    """What the hover thumbnails cover when not every drawn point has one: ``made`` crops of the
    ``wanted`` (the first drawn points, up to a limit) of ``drawn`` (None when all have one)."""
    if made >= drawn:
        return None
    more = " (more with each rerun)" if made < wanted else ""
    return (
        f"Hover thumbnails for {made:,} of the {drawn:,} drawn points"
        f"{more}; click a point to see any object."
    )


def points_frame(m: ObjectMap, rows: np.ndarray, names: dict[int, str]) -> pd.DataFrame:
    """The drawn points, one row per map row in ``rows``."""
    cats = m.category_id[rows]
    return pd.DataFrame(
        {
            "x": m.x[rows],
            "y": m.y[rows],
            "annotation_id": m.annotation_id[rows],
            "image_id": m.image_id[rows],
            "area": m.area[rows],
            "category_id": cats,
            "category": pd.Categorical.from_codes(
                *_category_codes(cats, names)
            ),  # a category column: one string per name, not per point
        }
    )


def _category_codes(cats: np.ndarray, names: dict[int, str]):
    ids = np.array(sorted(names), np.int64)
    labels = [names[i] for i in ids]
    at = np.searchsorted(ids, cats)
    known = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == cats) if len(ids) else at < 0
    return np.where(known, at, len(labels)), [*labels, "?"]


AGREEMENT_NAMES = {AGREES: "agrees", DISAGREES: "disagrees", NO_LABEL: "no label for it"}
AGREEMENT_COLOURS = {AGREES: "#2ca02c", DISAGREES: "#d62728", NO_LABEL: "#bbbbbb"}


def colouring(
    choice: str, m: ObjectMap, rows: np.ndarray, names: dict[int, str], per_row=None
) -> MapColouring:
    """The colouring of the drawn ``rows``; ``per_row`` is the agreement codes or the mistake
    scores of every map row, for those two choices."""
    if choice == BY_SIZE:
        return MapColouring("area (px²)", values=m.area[rows], log=True)
    if choice == BY_AGREEMENT:
        return MapColouring(
            "model agreement",
            codes=per_row[rows],
            names=AGREEMENT_NAMES,
            colours=AGREEMENT_COLOURS,
        )
    if choice == BY_MISTAKE:
        return MapColouring("mistake score", values=per_row[rows])
    present = set(np.unique(m.category_id).tolist())
    return MapColouring(
        "category",
        codes=m.category_id[rows],
        names={c: n for c, n in names.items() if c in present},
    )


@dataclass(frozen=True)
class Picked:
    """What the chart's selection says: the annotation ids chosen, and whether by a box or
    lasso (a region) or by clicking one point."""

    annotation_ids: np.ndarray
    region: bool


def picked_from(selection) -> Picked:
    """The chart's selection (Streamlit's dict-like) as annotation ids of map points (legend
    traces carry none)."""
    if not selection:
        return Picked(np.zeros(0, np.int64), False)
    data = [p.get("customdata") for p in selection.get("points", []) or []]
    ids = np.array([int(i) for i in data if isinstance(i, int | float)], np.int64)
    region = bool(selection.get("box") or selection.get("lasso"))
    return Picked(pd.unique(ids), region)
