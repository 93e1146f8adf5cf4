"""The Evaluate page's figures: COCO's evaluation of a predictions file, and two side by side.

Bars carry ``customdata`` = category id and the confusion matrix's click targets carry
``customdata`` = (row, column), so a click maps back to what it shows (:func:`clicked`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT, MARGIN, two_line_title

_BAR = "#4292c6"
_SECOND = "#f28e2b"
_ROW_PX = 16  # a horizontal bar chart's height per category: every name readable


def clicked(selection: dict | None) -> list | None:
    """The ``customdata`` of the first selected point of a plotly selection event (a list:
    one value or several), if any. (A row of a typed array comes back as ``{"0": a, "1": b}``.)"""
    for point in (selection or {}).get("points") or []:
        data = point.get("customdata")
        if isinstance(data, dict):
            return [data[k] for k in sorted(data, key=int)]
        if data is not None:
            return data if isinstance(data, list) else [data]
    return None


def _bar_height(rows: int) -> int:
    return 110 + _ROW_PX * max(rows, 3)


def category_ap_bars(
    names: Sequence[str], category_ids: np.ndarray, ap: np.ndarray, title: str
) -> go.Figure:
    """AP per category as horizontal bars, best on top; categories without ground truth (AP
    -1) are named under the title, not drawn."""
    ap = np.asarray(ap, np.float64)
    shown = np.flatnonzero(ap > -1)
    order = shown[np.argsort(ap[shown], kind="stable")]  # plotly draws the first at the bottom
    absent = [names[int(i)] for i in np.flatnonzero(ap <= -1)]
    fig = go.Figure(
        go.Bar(
            x=ap[order],
            y=[names[i] for i in order],
            orientation="h",
            customdata=np.asarray(category_ids)[order],
            marker_color=_BAR,
            text=[f"{v:.3f}" for v in ap[order]],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: AP %{x:.3f} · click to browse it<extra></extra>",
        )
    )
    detail = (
        f"no ground truth: {', '.join(absent[:8])}{' …' if len(absent) > 8 else ''}"
        if absent
        else "click a bar to browse that category's images"
    )
    fig.update_layout(
        **two_line_title(title, detail),
        height=_bar_height(len(order)),
        xaxis={"range": [0, 1.08], "title": "AP"},
        yaxis={"type": "category", "automargin": True},
        clickmode="event+select",
    )
    return fig


def pr_curves(recall: np.ndarray, curves: Mapping[str, np.ndarray], title: str) -> go.Figure:
    """Precision against recall, one line per curve (entries of -1, no ground truth, left
    out)."""
    fig = go.Figure()
    for (label, precision), dash in zip(curves.items(), ("solid", "dash", "dot"), strict=False):
        p = np.asarray(precision, np.float64)
        fig.add_scatter(
            x=recall,
            y=np.where(p > -1, p, np.nan),
            mode="lines",
            name=label,
            line={"dash": dash, "shape": "hv"},
            hovertemplate=f"{label}: recall %{{x:.2f}}, precision %{{y:.3f}}<extra></extra>",
        )
    fig.update_layout(
        title=title,
        xaxis={"title": "recall", "range": [0, 1]},
        yaxis={"title": "precision", "range": [0, 1.02]},
        legend={"orientation": "h", "y": -0.2},
        height=380,
        **LAYOUT,
    )
    return fig


def _cell_text(rows: Sequence[str], columns: Sequence[str], i: int, j: int, n: int) -> str:
    """What a cell counts, in words (background is the last row and column)."""
    if j == len(columns) - 1 and i < len(rows) - 1:
        return f"{n:,} {rows[i]} missed"
    if i == len(rows) - 1:
        return f"{n:,} {columns[j]} detections on no object"
    if rows[i] == columns[j]:
        return f"{n:,} {rows[i]} found"
    return f"{n:,} {rows[i]} taken for {columns[j]}"


def confusion_matrix(
    matrix: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    cells: tuple[np.ndarray, np.ndarray],
) -> go.Figure:
    """A detection confusion matrix: rows are the objects' classes then background, columns
    the detections' classes then background; the colour is log-scaled (the diagonal's true
    positives outnumber the errors), each cell says its count. ``cells`` holds each row's and
    column's index in the full matrix: a click on a counted cell gives them back (a heatmap's
    cells cannot be selected, so an invisible marker sits on each)."""
    counts = np.asarray(matrix, np.int64)
    grid = np.indices(counts.shape)
    r, c = grid[0], grid[1]
    full = np.stack([cells[0][r], cells[1][c]], axis=-1)
    fig = go.Figure(
        go.Heatmap(
            z=np.log10(1 + counts),
            x=list(columns),
            y=list(rows),
            text=np.where(counts > 0, counts.astype(str), ""),
            texttemplate="%{text}",
            colorscale="Blues",
            showscale=False,
            hoverinfo="skip",
            xgap=1,
            ygap=1,
        )
    )
    hit = counts > 0
    fig.add_scatter(
        x=[columns[int(j)] for j in c[hit]],
        y=[rows[int(i)] for i in r[hit]],
        mode="markers",
        marker={"symbol": "square", "size": 18, "color": "rgba(0,0,0,0)"},
        customdata=full[hit].tolist(),  # lists: a typed array's rows come back as objects
        text=[
            _cell_text(rows, columns, int(i), int(j), int(n))
            for i, j, n in zip(r[hit], c[hit], counts[hit], strict=True)
        ],
        hovertemplate="%{text}<br>click to browse their images<extra></extra>",
        showlegend=False,
    )
    fig.update_layout(
        title="Confusion at IoU 0.5 (rows: objects, columns: detections)",
        xaxis={"title": "detected as", "tickangle": -45, "type": "category", "automargin": True},
        yaxis={"title": "object", "autorange": "reversed", "type": "category", "automargin": True},
        height=140 + 26 * len(rows),
        clickmode="event+select",
        **LAYOUT,
    )
    return fig


def error_bars(counts: Mapping[str, int], delta_ap: Mapping[str, float]) -> go.Figure:
    """Per error cause: how many (detections; objects for "missed") and the AP@0.5 fixing
    them alone would add, side by side."""
    from plotly.subplots import make_subplots

    causes = list(counts)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("How many", "AP@0.5 gained if fixed"),
        horizontal_spacing=0.18,
    )
    fig.add_bar(
        x=[counts[c] for c in causes][::-1],
        y=causes[::-1],
        orientation="h",
        marker_color=_SECOND,
        text=[f"{counts[c]:,}" for c in causes][::-1],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{y}: %{x:,}<extra></extra>",
        row=1,
        col=1,
    )
    fig.add_bar(
        x=[delta_ap.get(c, 0.0) for c in causes][::-1],
        y=causes[::-1],
        orientation="h",
        marker_color=_BAR,
        text=[f"{delta_ap.get(c, 0.0):.3f}" for c in causes][::-1],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{y}: +%{x:.3f} AP@0.5<extra></extra>",
        row=1,
        col=2,
    )
    fig.update_layout(showlegend=False, height=320, **LAYOUT)
    fig.update_xaxes(rangemode="tozero")
    return fig


def compare_ap_dots(
    names: Sequence[str], ap_a: np.ndarray, ap_b: np.ndarray, labels: tuple[str, str], top: int
) -> go.Figure:
    """AP per category of two files, one row per category (a dot for each file, a line
    between): the ``top`` categories whose AP changed most, most gained on top; categories
    without ground truth left out."""
    ap_a, ap_b = np.asarray(ap_a, np.float64), np.asarray(ap_b, np.float64)
    both = np.flatnonzero((ap_a > -1) & (ap_b > -1))
    change = ap_b - ap_a
    biggest = both[np.argsort(-np.abs(change[both]), kind="stable")[:top]]
    order = biggest[np.argsort(change[biggest], kind="stable")]  # the first is drawn lowest
    y = [names[int(i)] for i in order]
    fig = go.Figure()
    fig.add_scatter(
        x=np.stack([ap_a[order], ap_b[order], np.full(len(order), np.nan)], 1).ravel(),
        y=np.repeat(np.array(y, dtype=object), 3),
        mode="lines",
        line={"color": "#bdbdbd", "width": 3},
        hoverinfo="skip",
        showlegend=False,
    )
    for values, label, colour in ((ap_a, labels[0], _BAR), (ap_b, labels[1], _SECOND)):
        fig.add_scatter(
            x=values[order],
            y=y,
            mode="markers",
            name=label,
            marker={"color": colour, "size": 10},
            hovertemplate=f"%{{y}}: {label} AP %{{x:.3f}}<extra></extra>",
        )
    fig.update_layout(
        **two_line_title(
            "AP per category, both files",
            f"the {len(order)} that changed most; most gained on top",
        ),
        height=110 + 22 * max(len(order), 3),
        xaxis={"range": [-0.02, 1.02], "title": "AP@[.50:.95]"},
        yaxis={"type": "category", "automargin": True},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 1, "xanchor": "right"},
    )
    fig.update_layout(margin=MARGIN | {"t": 80})
    return fig
