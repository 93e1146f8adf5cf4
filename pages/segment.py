"""Segment: a segmenter's mask beside the ground truth, its errors, and an evaluation of the
filter."""

import numpy as np
import streamlit as st

from explorer.app import widgets as ui
from explorer.coco import masks
from explorer.coco.labels import dataset_label_map
from explorer.errors import ExplorerError
from explorer.inference import runner as infer
from explorer.inference import segmentation
from explorer.inference.cache import predict
from explorer.viz import figures as charts
from explorer.viz import overlays as render

source, index, model = ui.model_page("Segment", "segment", "s")
images = source.images_dir
labels_met = segmentation.eval_space(model, index)
space, to_eval = labels_met.space, labels_met.to_eval

image_id = ui.chosen_image(index, "s")
if image_id is not None:
    row = index.image_row(image_id)
    try:
        ((_, out, err),) = predict(
            model, index, images, infer.items_for_images(index, [row]), workers=0
        )
    except ExplorerError as e:
        st.error(str(e))
        st.stop()
    if out is None:
        st.error(err)
        st.stop()
    labels, _ = out
    rgb, note = render.load_image(index, images, row)
    if note:
        st.warning(note)
    view = st.radio("View", ["Side by side", "Errors"], horizontal=True, key="s_view")
    alpha = st.slider("Opacity", 0.0, 1.0, 0.55, 0.05, key="s_alpha")
    colours = render.label_colours(
        index, dataset_label_map(model.label_space, model.class_names, index.categories)
    )
    try:
        truth, _ = masks.semantic_mask(index, row, "coco")
        target, _ = masks.semantic_mask(index, row, space)
    except ExplorerError as e:  # e.g. category ids that do not fit an 8-bit mask
        st.error(str(e))
        st.stop()
    truth_colours = render.category_colours(index)
    pred = to_eval[labels]
    if view == "Side by side":
        a, b = st.columns(2)
        a.image(
            render.encode_jpeg(render.blend_labels(rgb, labels, colours, alpha)),
            output_format="JPEG",
            caption=f"prediction ({model.display_name})",
        )
        b.image(
            render.encode_jpeg(
                render.blend_labels(rgb, truth, truth_colours, alpha, skip=(0, 255))
            ),
            output_format="JPEG",
            caption="ground truth (semantic mask; overlaps left clear)",
        )
    else:
        a, b = st.columns([3, 1])
        a.image(
            render.encode_jpeg(render.error_overlay(rgb, render.error_codes(target, pred), alpha)),
            output_format="JPEG",
            caption=f"errors in {space.upper()} labels",
        )
        b.markdown(
            "\n".join(
                f"<span style='color:rgb{c}'>■</span> {k}" for k, c in render.ERROR_COLOURS.items()
            ),
            unsafe_allow_html=True,
        )
    ev = segmentation.evaluate_segmentation(model, index, images, [row], space, workers=0)
    present = {k: v for k, v in ev["per_class_iou"].items() if v is not None}
    st.markdown(
        f"This image: pixel accuracy **{ev['pixel_acc']:.3f}**, mean IoU **{ev['miou']:.3f}** "
        f"({space.upper()} labels)"
    )
    st.plotly_chart(charts.iou_bars(present, "IoU per class, this image"), key="s_img_iou")

st.subheader("Evaluate the current Browse filter")
flt = st.session_state.get("b_filter")
rows_f = ui.filtered_image_rows(source.annotations, flt) if flt else np.arange(index.num_images)
st.caption(
    f"{len(rows_f):,} images · computed like torchvision's segmentation reference (255 ignored), "
    "at the original image size"
)
key = ui.result_key(source, index, rows_f, model)
if st.button("Evaluate current filter", key="s_run"):
    ev = ui.run_with_progress(
        "segmenting", segmentation.evaluate_segmentation, model, index, images, rows_f, space
    )
    if ev is not None:
        st.session_state["s_result"] = (key, ev)
if st.session_state.get("s_result", (None,))[0] == key:  # only for this dataset, filter and model
    ev = st.session_state["s_result"][1]
    st.markdown(
        f"**{ev['model']}** [{'UNTRAINED' if ev['untrained'] else ev['weights']}] on "
        f"{ev['images']:,} images: pixel accuracy **{ev['pixel_acc']:.3f}**, "
        f"mean IoU **{ev['miou']:.3f}**"
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        charts.confusion_heatmap(ev["classes"], np.array(ev["confusion"])), key="s_conf"
    )
    c2.plotly_chart(charts.iou_bars(ev["per_class_iou"]), key="s_iou")
