"""Plotly figures for the pages: pure functions of numbers and typed results, tested without
Streamlit.

Category bars carry ``customdata`` = category id, so a click maps back to a category
(:func:`clicked_category`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from explorer.viz.overlays import hex_colour, palette

if TYPE_CHECKING:
    from explorer.inference.classification import CategoryAccuracy
    from explorer.inference.compare import ModelConfusion, Outcome, SizeAccuracy
    from explorer.types import SizeClass

_LAYOUT = {"margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "template": "plotly_white"}


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
        **_LAYOUT,
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
    fig.update_layout(title="Supercategory → category (instances)", **_LAYOUT)
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
        title=("Share of each object size" if shares else "Object size")
        + " per category (COCO small < 32², large ≥ 96²)",
        barmode="stack",
        barnorm="fraction" if shares else None,
        yaxis_type="linear",
        xaxis_tickangle=-45,
        **_LAYOUT,
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
        **_LAYOUT,
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
    fig.update_layout(
        title=title, xaxis_title=x_title, yaxis_title="images", bargap=0.05, **_LAYOUT
    )
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
        title=f"Co-occurrence: images containing both (top {len(order)} categories)",
        yaxis_autorange="reversed",
        **_LAYOUT,
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
        **_LAYOUT,
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
        title="Image width x height", xaxis_title="width", yaxis_title="height", **_LAYOUT
    )
    return fig


def layer_table(rows: list) -> pd.DataFrame:
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


def feature_map_sizes(maps: list[tuple[int, object]]) -> go.Figure:
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
        **_LAYOUT,
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
        barmode="overlay", title=f"{negative:.0%} of the values were negative", **_LAYOUT
    )
    return fig


def softmax_bars(names: list[str], probs: list[float]) -> go.Figure:
    """A classifier's most probable classes, the most probable on top."""
    fig = go.Figure(go.Bar(x=probs[::-1], y=names[::-1], orientation="h"))
    fig.update_layout(
        title=f"softmax: the top {len(names)} classes", xaxis={"range": [0, 1]}, **_LAYOUT
    )
    return fig


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
        title=title, xaxis={"title": "probability", "range": [0, 1]}, height=320, **_LAYOUT
    )
    return fig


def accuracy_by_category(acc: CategoryAccuracy) -> go.Figure:
    """Top-1 accuracy per true category, most frequent first."""
    names, right, total = acc.names, acc.right, acc.total
    order = np.argsort(-total, kind="stable")
    acc = np.where(total > 0, right / np.maximum(total, 1), 0.0)
    fig = go.Figure(
        go.Bar(
            x=[names[i] for i in order],
            y=acc[order],
            customdata=np.stack([right, total], 1)[order],
            marker_color="#4292c6",
            hovertemplate="%{x}: %{y:.2f} (%{customdata[0]} of %{customdata[1]})<extra></extra>",
        )
    )
    fig.update_layout(
        title="Accuracy per true category",
        yaxis={"range": [0, 1], "title": "accuracy"},
        xaxis_tickangle=-45,
        **_LAYOUT,
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
        **_LAYOUT,
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
        title=title, yaxis={"range": [0, 1], "title": "IoU"}, xaxis_tickangle=-45, **_LAYOUT
    )
    return fig


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased at the start."""
    out = np.empty(len(values))
    last, norm = 0.0, 0.0
    for i, v in enumerate(np.asarray(values, np.float64)):
        last = last * weight + (1 - weight) * v
        norm = norm * weight + (1 - weight)
        out[i] = last / norm if norm else v
    return out


def training_curves(
    curves, metrics: str | list[str], x: str = "step", smoothing: float = 0.6, log: bool = False
) -> go.Figure:
    """One line per (run, metric) from a long table (run, metric, step, epoch, wall, value): runs
    keep a colour, metrics a dash (train solid, val dashed); raw values stay faint under the
    smoothed line."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    fig = go.Figure()
    sub = curves[curves["metric"].isin(metrics)]
    run_names = list(dict.fromkeys(sub["run"]))
    colours = {
        r: hex_colour(c) for r, c in zip(run_names, palette(max(1, len(run_names))), strict=False)
    }
    for (run, metric), g in sub.groupby(["run", "metric"], sort=False):
        g = g.sort_values("step")
        xs = g[x] if x in g and g[x].notna().any() else g["step"]
        c, dash = colours[run], "dash" if str(metric).startswith("val") else "solid"
        if smoothing > 0 and len(g) > 2:
            fig.add_scatter(
                x=xs,
                y=g["value"],
                mode="lines",
                line={"color": c, "width": 1, "dash": dash},
                opacity=0.25,
                showlegend=False,
                hoverinfo="skip",
            )
        fig.add_scatter(
            x=xs,
            y=ema(g["value"].to_numpy(), smoothing) if smoothing > 0 else g["value"],
            mode="lines+markers" if len(g) < 40 else "lines",
            name=f"{run} · {metric}",
            line={"color": c, "width": 2, "dash": dash},
        )
    fig.update_layout(
        title=", ".join(metrics),
        xaxis_title={"wall": "seconds"}.get(x, x),
        yaxis_type="log" if log else "linear",
        legend={"orientation": "h", "y": -0.25},
        **_LAYOUT,
    )
    return fig


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
        title="Agreement per true category", barmode="stack", xaxis_tickangle=-45, **_LAYOUT
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
        title="Classifier versus segmenter (comparable objects)",
        xaxis_title="segmenter says",
        yaxis_title="classifier says",
        yaxis_autorange="reversed",
        **_LAYOUT,
    )
    return fig


def accuracy_by_size(by_size: dict[SizeClass, SizeAccuracy]) -> go.Figure:
    sizes = list(by_size)
    fig = go.Figure()
    for key, name, colour in (
        ("classifier_acc", "classifier", "#1f77b4"),
        ("segmenter_acc", "segmenter", "#ff7f0e"),
    ):
        fig.add_bar(
            x=sizes,
            y=[by_size[s][key] or 0 for s in sizes],
            name=name,
            marker_color=colour,
            customdata=[by_size[s]["objects"] for s in sizes],
            hovertemplate="%{x}: %{y:.2f} of %{customdata} objects<extra>" + name + "</extra>",
        )
    fig.update_layout(
        title="Accuracy by object size (COCO small / medium / large)",
        barmode="group",
        yaxis={"range": [0, 1]},
        **_LAYOUT,
    )
    return fig


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
        **_LAYOUT,
        height=640,
        meta="object-map",
        hovermode="closest",
        legend={"title": {"text": c.title}, "itemsizing": "constant", "x": 1.02, "y": 1},
        xaxis=hidden,
        yaxis={**hidden, "scaleanchor": "x", "scaleratio": 1},
    )
