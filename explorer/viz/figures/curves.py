"""Training curves (the Train page): runs compared metric by metric, smoothed like TensorBoard."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.viz.figures.layout import LAYOUT
from explorer.viz.overlays import hex_colour, palette


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
        **LAYOUT,
    )
    return fig
