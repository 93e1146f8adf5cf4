"""The Distributions page's figures: what the dataset holds, per category and per image.

Category bars carry ``customdata`` = category id, so a click maps back to a category
(:func:`clicked_category`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT, two_line_title
from explorer.viz.overlays import hex_colour, palette


def supercategory_colours(categories: list[dict]) -> dict[str, str]:
    supers = sorted({c["supercategory"] for c in categories})
    return {s: hex_colour(c) for s, c in zip(supers, palette(len(supers)), strict=True)}


def category_bars(
    categories: list[dict], values: np.ndarray, title: str, sort: str = "count", log: bool = False
) -> go.Figure:
    """One bar per category coloured by supercategory; ``sort`` is count, name or supercategory."""
    order = {
        "count": np.argsort(-values, kind="stable"),
        "name": np.argsort([c["name"] for c in categories], kind="stable"),
        "supercategory": np.lexsort(
            ([c["name"] for c in categories], [c["supercategory"] for c in categories])
        ),
    }[sort]
    colours = supercategory_colours(categories)
    fig = go.Figure()
    for (
        sup,
        colour,
    ) in colours.items():  # one trace per supercategory: a legend that means something
        idx = [i for i in order if categories[i]["supercategory"] == sup]
        fig.add_bar(
            x=[categories[i]["name"] for i in idx],
            y=[int(values[i]) for i in idx],
            name=sup,
            marker_color=colour,
            customdata=[categories[i]["id"] for i in idx],
            hovertemplate="%{x}: %{y:,}<extra>" + sup + "</extra>",
        )
    fig.update_layout(
        title=title,
        barmode="relative",
        yaxis_type="log" if log else "linear",
        xaxis={
            "categoryorder": "array",
            "categoryarray": [categories[i]["name"] for i in order],
            "tickangle": -45,
        },
        legend_title="supercategory",
        **LAYOUT,
    )
    return fig


def clicked_category(selection: dict | None) -> int | None:
    """The category id of the first selected bar of a plotly selection event, if any."""
    points = (selection or {}).get("points") or []
    for p in points:
        cd = p.get("customdata")
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if cd is not None:
            return int(cd)
    return None


def category_sunburst(categories: list[dict], instances: np.ndarray) -> go.Figure:
    supers = sorted({c["supercategory"] for c in categories})
    colours = supercategory_colours(categories)
    ids = [f"s/{s}" for s in supers] + [f"c/{c['id']}" for c in categories]
    labels = supers + [c["name"] for c in categories]
    parents = [""] * len(supers) + [f"s/{c['supercategory']}" for c in categories]
    values = [
        int(sum(instances[i] for i, c in enumerate(categories) if c["supercategory"] == s))
        for s in supers
    ]
    values += [int(v) for v in instances]
    fig = go.Figure(
        go.Sunburst(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            marker={
                "colors": [colours[s] for s in supers]
                + [colours[c["supercategory"]] for c in categories]
            },
            hovertemplate="%{label}: %{value:,} instances<extra></extra>",
        )
    )
    fig.update_layout(title="Supercategory → category (instances)", **LAYOUT)
    return fig


def size_class_bars(
    categories: list[dict], sizes: dict[str, np.ndarray], shares: bool = False
) -> go.Figure:
    """Objects per size class, stacked per category: counts on a linear axis (a log axis
    distorts stacked bars), or with ``shares`` each category's split into size classes (0-1)."""
    total = sizes["small"] + sizes["medium"] + sizes["large"]
    order = np.argsort(-total, kind="stable")
    names = [categories[i]["name"] for i in order]
    fig = go.Figure()
    for key, colour in (("small", "#9ecae1"), ("medium", "#4292c6"), ("large", "#08306b")):
        fig.add_bar(x=names, y=sizes[key][order], name=key, marker_color=colour)
    fig.update_layout(
        barmode="stack",
        barnorm="fraction" if shares else None,
        yaxis_type="linear",
        xaxis_tickangle=-45,
        **two_line_title(
            ("Share of each object size" if shares else "Object size") + " per category",
            "COCO small < 32², large ≥ 96²",
        ),
    )
    return fig


def log_histogram(values: np.ndarray, title: str, x_title: str, bins: int = 60) -> go.Figure:
    """A histogram over log-spaced bins (values <= 0 are left out)."""
    v = np.asarray(values, np.float64)
    v = v[v > 0]
    fig = go.Figure()
    if len(v):
        edges = np.logspace(np.log10(v.min()), np.log10(v.max()) + 1e-9, bins + 1)
        counts, _ = np.histogram(v, edges)
        fig.add_bar(
            x=np.sqrt(edges[:-1] * edges[1:]),
            y=counts,
            width=np.diff(edges),
            marker_color="#4292c6",
            hovertemplate="%{x:.3g}: %{y:,}<extra></extra>",
        )
    fig.update_layout(
        title=title,
        xaxis={"type": "log", "title": x_title},
        yaxis_title="count",
        bargap=0,
        **LAYOUT,
    )
    return fig


def count_histogram(values: np.ndarray, title: str, x_title: str) -> go.Figure:
    counts = np.bincount(np.asarray(values, np.int64)) if len(values) else np.zeros(1, np.int64)
    fig = go.Figure(
        go.Bar(
            x=np.arange(len(counts)),
            y=counts,
            marker_color="#4292c6",
            hovertemplate="%{x}: %{y:,} images<extra></extra>",
        )
    )
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title="images", bargap=0.05, **LAYOUT)
    return fig


def cooccurrence_heatmap(categories: list[dict], matrix: np.ndarray, top: int = 30) -> go.Figure:
    """Images containing both categories, for the ``top`` most frequent categories."""
    order = np.argsort(-np.diag(matrix), kind="stable")[:top]
    names = [categories[i]["name"] for i in order]
    sub = matrix[np.ix_(order, order)]
    fig = go.Figure(
        go.Heatmap(
            z=sub,
            x=names,
            y=names,
            colorscale="Blues",
            hovertemplate="%{y} & %{x}: %{z:,} images<extra></extra>",
        )
    )
    fig.update_layout(
        yaxis_autorange="reversed",
        **two_line_title("Co-occurrence", f"images containing both (top {len(order)} categories)"),
    )
    return fig


def centre_heatmap(cx: np.ndarray, cy: np.ndarray, bins: int = 40) -> go.Figure:
    # = np.histogram2d over [0, 1]², by integer bins (a tenth of its time on 860k boxes)
    iy = np.minimum((np.clip(cy, 0, 1) * bins).astype(np.int64), bins - 1)
    ix = np.minimum((np.clip(cx, 0, 1) * bins).astype(np.int64), bins - 1)
    h = np.bincount(iy * bins + ix, minlength=bins * bins).reshape(bins, bins).astype(np.float64)
    centres = (np.arange(bins) + 0.5) / bins
    fig = go.Figure(
        go.Heatmap(
            z=h,
            x=centres,
            y=centres,
            colorscale="Viridis",
            hovertemplate="x %{x:.2f}, y %{y:.2f}: %{z:,} boxes<extra></extra>",
        )
    )
    fig.update_layout(
        title="Box centres (normalised image coordinates)",
        yaxis_autorange="reversed",
        xaxis_title="x / width",
        yaxis_title="y / height",
        **LAYOUT,
    )
    fig.update_yaxes(scaleanchor="x")
    return fig


def image_size_scatter(widths: np.ndarray, heights: np.ndarray) -> go.Figure:
    """Image sizes; identical sizes are merged (COCO has few distinct ones) and sized by count."""
    keys, counts = np.unique(
        np.asarray(widths, np.int64) << 32 | np.asarray(heights, np.int64), return_counts=True
    )
    pairs = np.stack([keys >> 32, keys & 0xFFFFFFFF], 1)
    fig = go.Figure(
        go.Scattergl(
            x=pairs[:, 0],
            y=pairs[:, 1],
            mode="markers",
            marker={
                "size": 6 + 24 * np.sqrt(counts / max(counts.max(initial=1), 1)),
                "color": "#4292c6",
                "opacity": 0.6,
            },
            customdata=counts,
            hovertemplate="%{x} x %{y}: %{customdata:,} images<extra></extra>",
        )
    )
    fig.update_layout(
        title="Image width x height", xaxis_title="width", yaxis_title="height", **LAYOUT
    )
    return fig
