"""The Map page's parts: the object map drawn, coloured, sampled, hovered, selected, searched.

The data stays columnar (numpy arrays, a DataFrame of the drawn points): a map may hold most of
a million objects. The pure helpers (sampling, colourings, tables) take no Streamlit; each
visual component is one function with a ``key``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import caches, evaluate, state, url
from explorer.coco import CocoIndex
from explorer.coco.sources import DatasetSource
from explorer.errors import ExplorerError
from explorer.inference.cache import predict
from explorer.inference.embeddings import ObjectMap
from explorer.inference.runner import items_for_crops
from explorer.models.weights import LoadedModel
from explorer.viz.figures.object_map import MapColouring, object_map_figure

MAX_POINTS = 50_000  # drawn at most (a seeded sample above); neighbours use every object
HOVER_LIMIT = 1_500  # hover thumbnails for at most this many drawn points
HOVER_SECONDS = 3.0  # time a rerun may spend making new hover thumbnails
GRID_LIMIT = 200  # crops shown for a selection
NEIGHBOURS = 12
SEED = 0
BY_CATEGORY, BY_SIZE, BY_AGREEMENT, BY_MISTAKE = (
    "category",
    "object size",
    "model agreement",
    "mistake score",
)
AGREES, DISAGREES, NO_LABEL = 1, 0, -1


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


def map_rows_of(m: ObjectMap, annotation_ids) -> np.ndarray:
    """Map rows of these annotation ids (ids not on the map left out), in the given order."""
    ids = np.asarray(annotation_ids, np.int64)
    order = np.argsort(m.annotation_id, kind="stable")
    at = np.searchsorted(m.annotation_id, ids, sorter=order)
    at = np.minimum(at, max(len(order) - 1, 0))
    rows = order[at] if len(order) else np.zeros(0, np.int64)
    return rows[m.annotation_id[rows] == ids] if len(rows) else rows


def mistake_scores(m: ObjectMap, mistakes: pd.DataFrame | None) -> np.ndarray:
    """Per map row, the highest score of a mistake found on that object (0 where none)."""
    out = np.zeros(len(m), np.float64)
    if mistakes is None or not len(mistakes):
        return out
    best = mistakes.groupby("annotation_id")["score"].max()
    rows = map_rows_of(m, best.index.to_numpy())
    on_map = np.isin(best.index.to_numpy(), m.annotation_id)
    out[rows] = best.to_numpy()[on_map]
    return out


def agreement(
    model: LoadedModel, index: CocoIndex, images_dir: Path | None, m: ObjectMap, **kw
) -> np.ndarray:
    """Per map row: :data:`AGREES` when the classifier's top-1 on the crop is the annotated
    category, :data:`DISAGREES` when it is another, :data:`NO_LABEL` when the model has no label
    for the annotated category (or no answer). Predictions come through the cache."""
    order = np.argsort(index.images["id"], kind="stable")
    ids = np.unique(m.image_id)
    rows = np.sort(order[np.searchsorted(index.images["id"], ids, sorter=order)])
    mapping = model.category_of_label(index.categories)
    nameable = {c for c in mapping if c is not None}
    top1 = {
        it.annotation_id: mapping[int(out[0][0])]
        for it, out, _ in predict(model, index, images_dir, items_for_crops(index, rows), **kw)
        if out is not None
    }
    codes = np.full(len(m), NO_LABEL, np.int64)
    for i, (a, c) in enumerate(zip(m.annotation_id.tolist(), m.category_id.tolist(), strict=True)):
        if a in top1 and c in nameable:
            codes[i] = AGREES if top1[a] == c else DISAGREES
    return codes


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
    ids = [p.get("customdata") for p in selection.get("points", []) or []]
    ids = np.array([int(i) for i in ids if isinstance(i, int | float)], np.int64)
    region = bool(selection.get("box") or selection.get("lasso"))
    return Picked(pd.unique(ids), region)


def objects_table(m: ObjectMap, rows: np.ndarray, names: dict[int, str]) -> pd.DataFrame:
    """One line per map row: annotation id, image id, category name, area."""
    return pd.DataFrame(
        {
            "annotation_id": m.annotation_id[rows],
            "image_id": m.image_id[rows],
            "category": [names.get(int(c), "?") for c in m.category_id[rows]],
            "area": np.round(m.area[rows], 0),
        }
    )


def neighbour_table(
    m: ObjectMap, annotation_id: int, names: dict[int, str], k: int = NEIGHBOURS
) -> pd.DataFrame:
    """The object itself, then its ``k`` nearest neighbours in feature space, nearest first,
    with their cosine similarity to it.

    Raises:
        ExplorerError: the object is not on the map.
    """
    near = m.neighbours(annotation_id, k)
    rows = map_rows_of(m, np.concatenate([[annotation_id], near]))
    table = objects_table(m, rows, names)
    table["similarity"] = np.round(m.vectors[rows] @ m.vectors[rows[0]], 3)
    return table


def near_ids(m: ObjectMap, annotation_id: int | None, k: int = NEIGHBOURS) -> np.ndarray:
    """The object and its ``k`` neighbours (nothing when none is chosen or it is not on the
    map): what the chart highlights."""
    if annotation_id is None or not np.isin(annotation_id, m.annotation_id):
        return np.zeros(0, np.int64)
    return np.concatenate([[int(annotation_id)], m.neighbours(int(annotation_id), k)])


def _crop_bytes(source: DatasetSource, annotation_id: int) -> bytes | None:
    data = caches.crop_data_url(source.annotations, source.images, annotation_id, side=96)
    return base64.b64decode(data.split(",", 1)[1]) if data else None


# -- components (Streamlit) ---------------------------------------------------------------------


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
    codes = evaluate.run_with_progress(
        "classifying the crops", agreement, model, index, source.images_dir, m
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
    if len(urls) < len(annotation_ids):
        more = " (more with each rerun)" if len(urls) < len(ids) else ""
        st.caption(
            f"Hover thumbnails for {len(urls):,} of the {len(annotation_ids):,} drawn points"
            f"{more}; click a point to see any object."
        )


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
        query = url.browse_to_query(url.BrowseState(image_ids=images))
        st.switch_page("pages/browse.py", query_params=query)


def more_like_this(
    source: DatasetSource, m: ObjectMap, names: dict[int, str], key: str
) -> pd.DataFrame | None:
    """The chosen object (``<key>`` number input, or the last point clicked) and its
    :data:`NEIGHBOURS` nearest neighbours as a grid of crops; returns their table."""
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
            label = "this one" if r["annotation_id"] == chosen else f"{r['similarity']:.3f}"
            text = f"{r['category']} · {label}"
            if crop:
                col.image(crop, caption=text, width="stretch")
            else:
                col.caption(text)
    st.caption("Nearest first, by cosine similarity of the classifier's features.")
    return table
