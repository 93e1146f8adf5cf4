"""Distributions: class balance, object sizes, co-occurrence, box geometry, image sizes, health."""

import pandas as pd
import streamlit as st

from explorer.app import caches, dataset, state, url
from explorer.coco import stats
from explorer.viz import figures

source, index = dataset.page_dataset()
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

image_rows = (
    caches.filtered_image_rows(source.annotations, browse_filter)
    if follow and browse_filter
    else None
)
ann_rows = stats.annotation_rows_of_images(index, image_rows)
n_images = index.num_images if image_rows is None else len(image_rows)
n_anns = index.num_annotations if ann_rows is None else len(ann_rows)
st.caption(
    f"{n_images:,} images, {n_anns:,} annotations"
    + (" (following the Browse filters)" if image_rows is not None else "")
    + " · click a bar to browse that category"
)

counts = stats.category_counts(index, ann_rows)
left, right = st.columns(2)
for col, key, title in (
    (left, "instances", "Instances per category"),
    (right, "images", "Images per category"),
):
    event = col.plotly_chart(
        figures.category_bars(index.categories, counts[key], title, sort, log),
        key=f"x_bars_{key}",
        on_select="rerun",
        selection_mode="points",
    )
    clicked = figures.clicked_category(event.selection if event else None)
    if clicked is not None:
        query = url.browse_to_query(url.BrowseState(categories=(clicked,)))
        st.switch_page("pages/browse.py", query_params=query)

geometry = stats.box_geometry(index, ann_rows)
left, right = st.columns(2)
left.plotly_chart(figures.category_sunburst(index.categories, counts["instances"]), key="x_sun")
right.plotly_chart(
    figures.size_class_bars(index.categories, stats.size_classes(index, ann_rows), shares=log),
    key="x_sizes",
)
left, right = st.columns(2)
left.plotly_chart(
    figures.log_histogram(geometry["area"], "Object area (pixels)", "area"), key="x_area"
)
right.plotly_chart(
    figures.count_histogram(
        stats.instances_per_image(index, image_rows),
        "Annotations per image",
        "annotations in the image",
    ),
    key="x_per_image",
)
left, right = st.columns(2)
left.plotly_chart(
    figures.cooccurrence_heatmap(index.categories, stats.cooccurrence(index, image_rows)),
    key="x_co",
)
right.plotly_chart(
    figures.log_histogram(geometry["aspect"], "Box aspect ratio (width / height)", "w / h"),
    key="x_aspect",
)
left, right = st.columns(2)
left.plotly_chart(figures.centre_heatmap(geometry["cx"], geometry["cy"]), key="x_centres")
widths, heights = index.images["width"], index.images["height"]
if image_rows is not None:
    widths, heights = widths[image_rows], heights[image_rows]
right.plotly_chart(figures.image_size_scatter(widths, heights), key="x_sizes_wh")

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
