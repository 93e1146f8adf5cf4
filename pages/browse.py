"""Browse: filter the dataset, page through thumbnails, open an image with its annotations."""

from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import caches, dataset_picker, prediction_layer, predictions_picker, state, url
from explorer.coco.view_state import BrowseState, browse_from_query, browse_to_query
from explorer.types import SIZE_RANGES, Crowd, MatchMode
from explorer.viz import overlays

PAGES = Path(__file__).resolve().parent
source, index = dataset_picker.page_dataset()
opened = predictions_picker.page_predictions(source)
cats = {c["id"]: c for c in index.categories}
supers = sorted({c["supercategory"] for c in index.categories})
per_image = np.diff(index.images["ann_start"])
max_inst = int(per_image.max(initial=0))

full_range = (0, max(max_inst, 1))
if st.session_state.get("b_dataset") != source.annotations:  # another dataset: start afresh
    state.forget_browse_state()
    st.session_state["b_dataset"] = source.annotations
# The URL is the source of truth when it says something new (a deep link, a jump from another page)
# and whenever the browser's Back or Forward brought it (then even an address this session wrote
# itself, or one without a view: the grid's first page). Other URLs this session wrote itself are
# not news: a rerun may carry one the browser had not updated yet (fast key presses), and applying
# it would revert the widgets.
url_now = url.view_in_url()
from_url = url.history_navigation() or (
    bool(url_now) and url_now not in st.session_state.get("b_written", [])
)
if from_url:
    s = browse_from_query(url_now)
    state.show_browse_view(
        s.with_(
            categories=tuple(c for c in s.categories if c in cats),
            supercategories=tuple(x for x in s.supercategories if x in supers),
            missed=s.missed if s.missed in cats else None,
        ),
        full_range,
    )
st.session_state.setdefault("b_inst", full_range)
st.session_state.setdefault("b_page", 1)
# A widget's state is written only when it must change: writing it, even unchanged, sends the
# value back to the browser and overrides a key press made meanwhile.
inst_now = tuple(min(max(v, 0), full_range[1]) for v in st.session_state["b_inst"])
if inst_now != tuple(st.session_state["b_inst"]):
    st.session_state["b_inst"] = inst_now

st.title("Browse")
if missing := dataset_picker.image_folder_missing(source):
    st.warning(missing, icon=":material/hide_image:")
chosen_ids = tuple(st.session_state.get("b_ids", ()))
if chosen_ids:
    st.caption(
        f"Only the {len(chosen_ids):,} {'image' if len(chosen_ids) == 1 else 'images'} chosen "
        "on the Map or the Evaluate page "
        "(**Reset filters** shows all)"
    )
with st.expander("Filters", expanded=state.browse_image() is None):
    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    chosen = c1.multiselect(
        "Categories", list(cats), format_func=lambda i: cats[i]["name"], key="b_cats"
    )
    chosen_supers = c2.multiselect("Supercategories", supers, key="b_supers")
    match = c3.radio(
        "Match",
        get_args(MatchMode),
        key="b_match",
        horizontal=True,
        help="any: an image shows at least one chosen category; all: every one",
    )
    crowd = c4.selectbox(
        "Crowd",
        get_args(Crowd),
        key="b_crowd",
        help="only: images with a crowd region; none: images without",
    )
    c5, c6, c7 = st.columns([3, 1, 2])
    inst = c5.slider("Annotations per image", 0, full_range[1], key="b_inst")
    size = c6.selectbox(
        "Object size",
        ["any", *SIZE_RANGES],
        key="b_size",
        help="COCO: small < 32², medium, large ≥ 96² pixels (of the chosen categories)",
    )
    query = c7.text_input("Image id or file name", key="b_q")
    layer = prediction_layer.layer_filters(source, index, opened)
    st.button(
        "Reset filters", key="b_reset", on_click=state.reset_browse_filters, args=(full_range,)
    )

view = BrowseState(
    image_id=state.browse_image(),
    categories=tuple(chosen),
    supercategories=tuple(chosen_supers),
    match=match,
    crowd=crowd,
    instances=None if tuple(inst) == full_range else tuple(inst),
    size=size,
    query=query,
    page=int(st.session_state.get("b_page", 1)),
    image_ids=chosen_ids,
    **(layer.view_fields() if layer else {}),
)
rows = caches.filtered_image_rows(source.annotations, view.image_filter())
rows = prediction_layer.kept_rows(layer, index, rows)
state.set_browse_filter(view.image_filter())  # Distributions and the model pages follow it
shown_by = (view.image_filter(), view.missed, view.false_positive, view.order, view.predictions)
if st.session_state.get("b_seen_filter", shown_by) != shown_by and not from_url:
    st.session_state["b_page"] = 1  # another filter (an address names its own page)
st.session_state["b_seen_filter"] = shown_by


@st.fragment
def detail(image_id: int) -> None:
    row = index.image_row(image_id)
    ann_rows = index.annotation_rows(row)
    left, right = st.columns([1.4, 1])
    with right:
        alpha = st.slider("Mask opacity", 0.0, 1.0, 0.5, 0.05, key="d_alpha")
        t1, t2, t3, t4 = st.columns(4)
        show = dict(
            masks=t1.toggle("Masks", True, key="d_masks"),
            # over a predictions layer, the annotations' boxes and names would hide its own
            boxes=t2.toggle("Boxes", layer is None, key="d_boxes"),
            labels=t3.toggle("Labels", layer is None, key="d_labels"),
            crowd=t4.toggle("Crowd", True, key="d_crowd"),
        )
        present = sorted(set(index.annotations["category_id"][ann_rows].tolist()))
        only = st.multiselect(
            "Show only these categories",
            present,
            format_func=lambda i: cats[i]["name"],
            key="d_only",
        )
        table = pd.DataFrame(
            {
                "id": index.annotations["id"][ann_rows],
                "category": [cats[c]["name"] for c in index.annotations["category_id"][ann_rows]],
                "area": np.round(index.annotations["area"][ann_rows], 1),
                "bbox": [
                    ", ".join(f"{v:.0f}" for v in b) for b in index.annotations["bbox"][ann_rows]
                ],
                "crowd": index.annotations["iscrowd"][ann_rows],
            }
        )
        picked = st.dataframe(
            table,
            hide_index=True,
            on_select="rerun",
            selection_mode="single-row",
            key=f"d_table_{image_id}",  # a row chosen on one image is not kept for the next
            height=min(420, 38 + 35 * len(table)),
        )
        sel = picked.selection.rows if picked else []
        if layer is not None:
            prediction_layer.matches(layer, index, image_id)
    highlight = int(table["id"].iloc[sel[0]]) if sel and sel[0] < len(table) else None
    opts = overlays.OverlayOptions(
        alpha=alpha,
        categories=tuple(only),
        highlight=highlight,
        grey=layer is not None,  # the outcomes' colours are then the only ones
        **show,
    )
    if layer is None:
        jpeg, notes = caches.overlay_jpeg(source.annotations, source.images, image_id, opts)
    else:
        jpeg, notes = caches.prediction_overlay_jpeg(layer.key, layer.min_score, image_id, opts)
    with left:
        if layer is not None:
            prediction_layer.legend()
        st.image(jpeg, output_format="JPEG", width="stretch")
        for note in notes:
            st.warning(note)


if view.image_id is not None and not np.isin(view.image_id, index.images["id"]):
    st.warning(f"No image with id {view.image_id} in {source.label}.")
    view = view.with_(image_id=None)
    state.open_in_browse(None)

if view.image_id is not None:
    row = index.image_row(view.image_id)
    position = np.flatnonzero(rows == row)
    nav = st.columns([1, 1, 1, 5])
    nav[0].button("← Grid", on_click=state.open_in_browse, args=(None,))
    if len(position):
        i = int(position[0])
        nav[1].button(
            "◀ Previous",
            disabled=i == 0,
            shortcut="Left",
            on_click=state.open_in_browse,
            args=(int(index.images["id"][rows[max(i - 1, 0)]]),),
        )
        nav[2].button(
            "Next ▶",
            disabled=i + 1 >= len(rows),
            shortcut="Right",
            on_click=state.open_in_browse,
            args=(int(index.images["id"][rows[min(i + 1, len(rows) - 1)]]),),
        )
    written = index.image_label(view.image_id)
    shown = f"{view.image_id} ({written} in the file)" if written != str(view.image_id) else written
    st.subheader(f"Image {shown} · {index.images['file_name'][row]}")
    links = st.columns([1, 1, 6])
    for col, page, label in (
        (links[0], "classify.py", "Classify it"),
        (links[1], "segment.py", "Segment it"),
    ):
        col.page_link(str(PAGES / page), label=label, query_params={"image_id": str(view.image_id)})
    st.caption(
        f"{index.images['width'][row]} x {index.images['height'][row]} px, "
        f"{len(index.annotation_rows(row))} annotations"
    )
    detail(view.image_id)
else:
    page_size = st.session_state.get("b_page_size", 24)
    pages = max(1, -(-len(rows) // page_size))
    if not 1 <= int(st.session_state["b_page"]) <= pages:
        st.session_state["b_page"] = min(max(int(st.session_state["b_page"]), 1), pages)
    top = st.columns([4, 1, 1])
    top[0].markdown(f"**{len(rows):,}** of {index.num_images:,} images match")
    if layer is not None:
        top[0].caption(prediction_layer.errors_caption(layer, index, rows))
        with top[0]:
            prediction_layer.legend()
    if not len(rows):
        top[0].info("No image matches all these filters: loosen one, or press Reset filters.")
    top[1].selectbox("Per page", [24, 48], key="b_page_size")
    page = top[2].number_input(f"Page (of {pages})", 1, pages, key="b_page")
    view = view.with_(page=int(page))
    shown = rows[(view.page - 1) * page_size : view.page * page_size]
    grid = st.container(key="b_grid")
    for start in range(0, len(shown), 6):
        for col, r in zip(grid.columns(6), shown[start : start + 6], strict=False):
            image_id = int(index.images["id"][r])
            # markdown, drawn with the page's text: an image element waits for the widgets'
            # code, seconds on a slow machine; one tab stop per thumbnail (its button)
            thumb = (
                caches.thumbnail_url(source.annotations, source.images, image_id)
                if layer is None
                else caches.prediction_thumbnail_url(layer.key, layer.min_score, image_id)
            )
            col.markdown(
                f'<img src="{thumb}" alt="image {image_id}" style="width:100%;border-radius:4px">',
                unsafe_allow_html=True,
            )
            col.button(
                f"{image_id}",
                key=f"open_{image_id}",
                on_click=state.open_in_browse,
                args=(image_id,),
                help=f"open image {image_id} ({per_image[r]} annotations)",
                width="stretch",
            )
    bottom = st.columns([1, 1, 4])
    bottom[0].button(
        "◀ Previous page", disabled=view.page <= 1, on_click=state.turn_browse_page, args=(-1,)
    )
    bottom[1].button(
        "Next page ▶", disabled=view.page >= pages, on_click=state.turn_browse_page, args=(1,)
    )

written = browse_to_query(view)
st.session_state["b_written"] = [*st.session_state.get("b_written", [])[-7:], written]
url.show_view(written)
