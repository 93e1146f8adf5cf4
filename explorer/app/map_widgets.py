"""The Map page's Streamlit components: the colouring choice, the agreement codes computed once
per map, the chart, the hover thumbnails, the selection grid, "more like this".

What they show is computed in the library: the drawn points, colourings and the selection read
back in :mod:`explorer.viz.figures.object_map`, lookups and neighbours in
:mod:`explorer.inference.map_queries`, the agreement codes in
:func:`explorer.inference.classification.agreement`. Each component is one function with a
``key``.
"""

from __future__ import annotations

import base64
import sys

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import caches, run_on_filter, state
from explorer.coco import CocoIndex
from explorer.coco.dataset import Dataset
from explorer.coco.sources import DatasetSource
from explorer.coco.view_state import BrowseState, browse_to_query
from explorer.errors import ExplorerError
from explorer.inference.classification import agreement
from explorer.inference.embeddings import ObjectMap
from explorer.inference.map_queries import (
    distance_text,
    map_rows_of,
    median_distance,
    neighbour_table,
    objects_table,
)
from explorer.models.weights import LoadedModel
from explorer.viz.figures.object_map import (
    BY_AGREEMENT,
    BY_CATEGORY,
    BY_MISTAKE,
    BY_SIZE,
    MapColouring,
    Picked,
    hover_caption,
    object_map_figure,
    picked_from,
)

HOVER_LIMIT = 1_500  # hover thumbnails for at most this many drawn points
HOVER_SECONDS = 3.0  # time a rerun may spend making new hover thumbnails
GRID_LIMIT = 200  # crops shown for a selection
UMAP_FIRST_SECONDS = 40  # a server's first UMAP map: numba compiles UMAP (more on a busy machine)


def _crop_bytes(source: DatasetSource, annotation_id: int) -> bytes | None:
    data = caches.crop_data_url(source.annotations, source.images, annotation_id, side=96)
    return base64.b64decode(data.split(",", 1)[1]) if data else None


def draw_progress_label(method: str) -> str:
    """The "Draw the map" progress text. The bar counts the crops read; a server's first UMAP
    map then waits while UMAP is compiled (numba, once per process) with the bar full: say so
    up front (later maps skip it)."""
    if method == "umap" and "umap" not in sys.modules:
        return (
            f"reading the objects (then, for this first map, compiling UMAP once, "
            f"~{UMAP_FIRST_SECONDS} s; later maps are fast)"
        )
    return "reading the objects"


def colour_choice(key: str) -> str:
    """The colouring selectbox; mistake score only when the Mistakes page left a result."""
    options = [BY_CATEGORY, BY_SIZE, BY_AGREEMENT]
    if state.mistakes_table() is not None:
        options.append(BY_MISTAKE)
    choice = st.selectbox("Colour by", options, key=key)
    if BY_MISTAKE not in options:
        st.caption("Colouring by mistake score needs a Mistakes result: run Mistakes first.")
    return choice


def agreement_codes(
    model: LoadedModel, index: CocoIndex, source: DatasetSource, m: ObjectMap, key: str
) -> np.ndarray | None:
    """The agreement codes of the map, computed once per map (the classifier's answers on the
    crops, with a progress bar; None when stopped or failed)."""
    saved = st.session_state.get(key)
    if saved is not None and saved[0] is m:
        return saved[1]
    dataset = Dataset(index, source.images_dir)
    codes = run_on_filter.run_with_progress(
        "classifying the crops", lambda options: agreement(model, dataset, m, options)
    )
    if codes is not None:
        st.session_state[key] = (m, codes)
    return codes


def map_chart(points: pd.DataFrame, colours: MapColouring, highlight, key: str) -> Picked:
    """The scatter; returns what is selected on it."""
    event = st.plotly_chart(
        object_map_figure(points, colours, highlight),
        key=key,
        on_select="rerun",
        selection_mode=("points", "box", "lasso"),
        config={"scrollZoom": True, "displaylogo": False},
    )
    return picked_from(event.selection if event else None)


_HOVER_JS = """
export default function (component) {
  const urls = (component.data && component.data.urls) || {};
  const state = window.__explorerMapHover || (window.__explorerMapHover = { x: 0, y: 0 });
  state.urls = urls;
  let img = document.getElementById("explorer-map-hover");
  if (!img) {
    img = document.createElement("img");
    img.id = "explorer-map-hover";
    img.style.cssText = "position:fixed;display:none;z-index:100000;pointer-events:none;" +
      "width:96px;height:96px;border:2px solid #fff;border-radius:4px;" +
      "box-shadow:0 2px 8px rgba(0,0,0,.45);background:#222";
    document.body.appendChild(img);
    document.addEventListener("mousemove", (e) => { state.x = e.clientX; state.y = e.clientY; });
  }
  const show = (ev) => {
    const p = ev && ev.points && ev.points[0];
    const url = p ? state.urls[String(p.customdata)] : undefined;
    if (!url) { img.style.display = "none"; return; }
    img.src = url;
    const left = state.x + 112 > window.innerWidth ? state.x - 112 : state.x + 16;
    img.style.left = left + "px";
    img.style.top = Math.max(0, state.y - 110) + "px";
    img.style.display = "block";
  };
  const attach = () => {
    document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
      if (gd.__explorerHover || !gd.on || !gd.layout || gd.layout.meta !== "object-map") return;
      gd.__explorerHover = true;
      gd.on("plotly_hover", show);
      gd.on("plotly_unhover", () => { img.style.display = "none"; });
      gd.addEventListener("mouseleave", () => { img.style.display = "none"; });
    });
  };
  attach();
  if (!state.timer) state.timer = setInterval(attach, 500);
}
"""


@st.cache_resource
def _hover_component():
    return st.components.v2.component("explorer_map_hover", js=_HOVER_JS)


def hover_thumbnails(source: DatasetSource, annotation_ids: np.ndarray, key: str) -> None:
    """Floating crops that follow the mouse over the map (plotly's hover label shows no image):
    a page-side script listens to the chart's hover events; the crops of the first
    :data:`HOVER_LIMIT` drawn points travel as the component's data."""
    import time

    ids = annotation_ids[:HOVER_LIMIT].tolist()
    # each new crop decodes its whole image (~25 ms for a COCO photo): a rerun spends at most
    # HOVER_SECONDS on new ones and the next rerun goes on from the cached ones
    deadline = time.monotonic() + HOVER_SECONDS
    urls: dict[str, str] = {}
    for a in ids:
        if time.monotonic() > deadline:
            break
        urls[str(a)] = caches.crop_data_url(source.annotations, source.images, int(a), side=96)
    _hover_component()(data={"urls": urls}, key=key)
    caption = hover_caption(len(urls), len(ids), len(annotation_ids))
    if caption:
        st.caption(caption)


def selection_grid(
    source: DatasetSource, m: ObjectMap, ids: np.ndarray, names: dict[int, str], key: str
) -> None:
    """The selected objects as a table of crops, and a button that opens their images in
    Browse."""
    rows = map_rows_of(m, ids)
    table = objects_table(m, rows[:GRID_LIMIT], names)
    shown = f", showing the first {GRID_LIMIT}" if len(rows) > GRID_LIMIT else ""
    images = tuple(int(i) for i in pd.unique(m.image_id[rows]))
    st.caption(f"{len(rows):,} selected{shown} · on {len(images):,} images")
    table.insert(
        0,
        "object",
        [caches.crop_data_url(source.annotations, source.images, int(a)) for a in table.iloc[:, 0]],
    )
    st.dataframe(
        table,
        hide_index=True,
        key=f"{key}_table",
        row_height=56,
        height=min(420, 38 + 56 * len(table)),
        column_config={"object": st.column_config.ImageColumn("object", width="small")},
    )
    if st.button("Open these images in Browse", key=f"{key}_browse", disabled=not images):
        query = browse_to_query(BrowseState(image_ids=images))
        st.switch_page("pages/browse.py", query_params=query)


def more_like_this(
    source: DatasetSource, m: ObjectMap, names: dict[int, str], key: str
) -> pd.DataFrame | None:
    """The chosen object (``<key>`` number input, or the last point clicked) and its
    :data:`~explorer.inference.map_queries.NEIGHBOURS` nearest neighbours as a grid of crops;
    returns their table."""
    chosen = st.number_input(
        "Annotation id (or click a point)", min_value=0, value=None, step=1, key=key
    )
    if chosen is None:
        return None
    try:
        table = neighbour_table(m, int(chosen), names)
    except ExplorerError as e:
        st.warning(str(e))
        return None
    for start in range(0, len(table), 7):
        part = table.iloc[start : start + 7]
        for col, (_, r) in zip(st.columns(7), part.iterrows(), strict=False):
            crop = _crop_bytes(source, int(r["annotation_id"]))
            label = (
                "this one"
                if r["rank"] == 0
                else f"#{int(r['rank'])} · d {distance_text(float(r['distance']))}"
            )
            text = f"{r['category']} · {label}"
            if crop:
                col.image(crop, caption=text, width="stretch")
            else:
                col.caption(text)
    st.caption(
        "Nearest first. d: the distance between the classifier's unit feature vectors (0 the "
        "same, 1.41 unrelated, 2 opposite); the map's median object is at d "
        f"{distance_text(median_distance(m, int(chosen)))} from this one."
    )
    return table
