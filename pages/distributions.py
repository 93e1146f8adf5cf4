"""Distributions: class balance, object sizes, co-occurrence, box geometry, image sizes, health."""

import pandas as pd
import streamlit as st

from explorer.app import caches, dataset_picker, state
from explorer.coco.view_state import BrowseState, browse_to_query
from explorer.viz.figures.distributions import (
    category_bars,
    category_sunburst,
    centre_heatmap,
    clicked_category,
    cooccurrence_heatmap,
    count_histogram,
    image_size_scatter,
    log_histogram,
    size_class_bars,
)

source, index = dataset_picker.page_dataset()
st.title("Distributions")

c1, c2, c3 = st.columns([2, 1, 1])
browse_filter = state.browse_filter()
follow = c1.toggle(
    "Follow the Browse filters",
    False,
    key="x_follow",
    disabled=browse_filter is None,
    help="Compute everything on the images that match the filters set on the Browse page",
)
sort = c2.selectbox("Sort categories by", ["count", "name", "supercategory"], key="x_sort")
log = c3.toggle(
    "Log scale",
    False,
    key="x_log",
    help="Counts on a log axis; the stacked size bars show each category's shares instead",
)

following = follow and browse_filter is not None
d = caches.distributions(source.annotations, browse_filter if following else None)
st.caption(
    f"{d.images:,} images, {d.annotations:,} annotations"
    + (" (following the Browse filters)" if following else "")
    + " · click a bar to browse that category"
)

left, right = st.columns(2)
for col, key, title in (
    (left, "instances", "Instances per category"),
    (right, "images", "Images per category"),
):
    event = col.plotly_chart(
        category_bars(index.categories, d.counts[key], title, sort, log),
        key=f"x_bars_{key}",
        on_select="rerun",
        selection_mode="points",
    )
    clicked = clicked_category(event.selection if event else None)
    if clicked is not None:
        query = browse_to_query(BrowseState(categories=(clicked,)))
        st.switch_page("pages/browse.py", query_params=query)

left, right = st.columns(2)
left.plotly_chart(category_sunburst(index.categories, d.counts["instances"]), key="x_sun")
right.plotly_chart(size_class_bars(index.categories, d.sizes, shares=log), key="x_sizes")
left, right = st.columns(2)
left.plotly_chart(log_histogram(d.geometry["area"], "Object area (pixels)", "area"), key="x_area")
right.plotly_chart(
    count_histogram(d.per_image, "Annotations per image", "annotations in the image"),
    key="x_per_image",
)
left, right = st.columns(2)
left.plotly_chart(cooccurrence_heatmap(index.categories, d.cooccurrence), key="x_co")
right.plotly_chart(
    log_histogram(d.geometry["aspect"], "Box aspect ratio (width / height)", "w / h"),
    key="x_aspect",
)
left, right = st.columns(2)
left.plotly_chart(centre_heatmap(d.geometry["cx"], d.geometry["cy"]), key="x_centres")
right.plotly_chart(image_size_scatter(d.widths, d.heights), key="x_sizes_wh")

st.subheader("Health")
findings = caches.health_findings(source.annotations, source.images)
if not findings:
    st.success("No findings: every record parsed, no degenerate boxes, no unused categories.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "severity": f["severity"],
                    "finding": f["message"],
                    "count": f["count"],
                    "examples": ", ".join(map(str, f["examples"][:5])),
                    "check": f["check"],
                }
                for f in findings
            ]
        ),
        hide_index=True,
        width="stretch",
    )
