"""Map: every non-crowd object of the filter as a point, placed by what a classifier sees."""

import streamlit as st

from explorer.app import dataset_picker, model_picker, run_on_filter, state
from explorer.app import map_widgets as om
from explorer.coco.dataset import Dataset
from explorer.inference import embeddings
from explorer.inference.map_queries import map_rows_of, mistake_scores, near_ids
from explorer.viz.figures.object_map import (
    BY_AGREEMENT,
    BY_CATEGORY,
    BY_MISTAKE,
    colouring,
    points_frame,
    sample_caption,
    sample_rows,
)

source, index = dataset_picker.page_dataset()
dataset = Dataset(index, source.images_dir)
names = {int(c["id"]): c["name"] for c in index.categories}
st.title("Map")
st.caption(
    "Each non-crowd object's crop through the classifier's penultimate layer, PCA to 50 "
    "dimensions, then UMAP (or t-SNE, or PCA's first two axes) to two: objects close together "
    "look alike to the model."
)
model = model_picker.model_picker("classify", "m", source.annotations)
if model is None:
    st.stop()
method = st.radio("Method", embeddings.METHODS, key="m_method", horizontal=True)
omap = run_on_filter.evaluate_on_filter(
    run_on_filter.RunBlock(
        "m",
        button="Draw the map",
        working=om.draw_progress_label(method),
        what=" (the Browse filter): every non-crowd object's crop",
        primary=True,
    ),
    source,
    index,
    (model,),
    lambda rows, options: embeddings.embed(model, dataset, rows, method, options),
)
if omap is None or omap.method != method:
    st.info("Press **Draw the map**: a map drawn before is read back from the cache at once.")
    st.stop()
if not len(omap):
    st.warning("No object on the map: the filter keeps no non-crowd object whose crop reads.")
    st.stop()

model_picker.quality_notice(model)  # places, agreement and neighbours are this model's view
choice = om.colour_choice("m_colour")
per_row = None
if choice == BY_AGREEMENT:
    per_row = om.agreement_codes(model, index, source, omap, "m_agreement")
elif choice == BY_MISTAKE:
    per_row = mistake_scores(omap, state.mistakes_table())
if choice in (BY_AGREEMENT, BY_MISTAKE) and per_row is None:
    choice = BY_CATEGORY
drawn = sample_rows(len(omap))
points = points_frame(omap, drawn, names)
near = near_ids(omap, st.session_state.get("m_id"))
highlight = points_frame(omap, map_rows_of(omap, near), names) if len(near) else None
picked = om.map_chart(points, colouring(choice, omap, drawn, names, per_row), highlight, "m_map")
unread = f"{omap.unread:,} objects whose crop could not be read are left out"
notes = [sample_caption(len(drawn), len(omap)), unread if omap.unread else None]
notes.append("click a point for more like this; the toolbar's box or lasso selects a region")
st.caption(" · ".join(n for n in notes if n))
om.hover_thumbnails(source, points["annotation_id"].to_numpy(), "m_hover")

if picked.region and len(picked.annotation_ids):
    st.subheader("Selected")
    om.selection_grid(source, omap, picked.annotation_ids, names, "m_sel")
elif len(picked.annotation_ids) == 1 and not picked.region:
    clicked = int(picked.annotation_ids[0])
    if st.session_state.get("m_clicked") != clicked:  # a new click: its neighbours
        st.session_state["m_clicked"] = st.session_state["m_id"] = clicked
        st.rerun()

st.subheader("More like this")
om.more_like_this(source, omap, names, "m_id")
