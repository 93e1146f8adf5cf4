"""Segment: a segmenter's mask beside the truth, its errors, and an evaluation of the filter."""

import numpy as np
import streamlit as st

from explorer.app import model_picker, run_on_filter
from explorer.coco import masks
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference import segmentation
from explorer.inference.cache import predict_image
from explorer.inference.options import IN_THIS_THREAD
from explorer.types import IGNORE_LABEL
from explorer.viz import overlays
from explorer.viz.figures.predictions import confusion_heatmap, iou_bars

source, index, model = model_picker.model_page("Segment", "segment", "s")

dataset = Dataset(index, source.images_dir)
labels_met = segmentation.eval_space(model, index)
space, to_eval = labels_met.space, labels_met.to_eval
missing = labels_met.no_counterpart
where = "VOC class" if space == "voc" else "label of this model"
if labels_met.scorable == 0:
    st.warning(
        f"Nothing to score: no category of this dataset has a {where} of the same name "
        f"({', '.join(missing[:8])}{' …' if len(missing) > 8 else ''}). Train a segmenter on it "
        "(Train page) to score it.",
        icon=":material/block:",
    )
elif missing:
    st.caption(
        f"Not scored ({len(missing)} categories without a {where} of the same name): "
        + ", ".join(missing[:12])
        + (" …" if len(missing) > 12 else "")
    )

image_id = model_picker.chosen_image(index, "s")
if image_id is not None:
    row = index.image_row(image_id)
    try:
        _, out, err = predict_image(model, dataset, row)
    except ExplorerError as e:
        st.error(str(e))
        st.stop()
    if out is None:
        st.error(err)
        st.stop()
    labels, _ = out
    rgb, note = overlays.load_image(dataset, row)
    if note:
        st.warning(note)
    view = st.radio("View", ["Side by side", "Errors"], horizontal=True, key="s_view")
    alpha = st.slider("Opacity", 0.0, 1.0, 0.55, 0.05, key="s_alpha")
    colours = overlays.label_colours(index, model.category_of_label(index.categories))
    try:
        truth, _ = masks.semantic_mask(index, row, "coco")
        target, _ = masks.semantic_mask(index, row, space)
    except ExplorerError as e:  # e.g. category ids that do not fit an 8-bit mask
        st.error(str(e))
        st.stop()
    truth_colours = overlays.category_colours(index)
    pred = to_eval[labels]
    if view == "Side by side":
        a, b = st.columns(2)
        a.image(
            overlays.encode_jpeg(overlays.blend_labels(rgb, labels, colours, alpha)),
            output_format="JPEG",
            caption=f"prediction ({model.display_name})",
            width="stretch",
        )
        a.markdown(
            overlays.legend_markdown(overlays.legend(labels, colours, model.class_names))
            or "nothing predicted but background",
            unsafe_allow_html=True,
        )
        b.image(
            overlays.encode_jpeg(
                overlays.blend_labels(rgb, truth, truth_colours, alpha, skip=(0, IGNORE_LABEL))
            ),
            output_format="JPEG",
            caption="ground truth (semantic mask; overlaps left clear)",
            width="stretch",
        )
        names = {c["id"]: c["name"] for c in index.categories}
        b.markdown(
            overlays.legend_markdown(
                overlays.legend(truth, truth_colours, names, skip=(0, IGNORE_LABEL))
            )
            or "no annotated object",
            unsafe_allow_html=True,
        )
    else:
        a, b = st.columns([3, 1])
        codes = overlays.error_codes(target, pred)
        a.image(  # lossless: a JPEG smears the error colours into ones the legend lacks
            overlays.encode_png(overlays.error_overlay(rgb, codes, alpha)),
            caption=f"errors in {space.upper()} labels, over the image in grey",
            width="stretch",
        )
        b.markdown(
            "<br>".join(overlays.legend_markdown([entry]) for entry in overlays.error_legend(codes))
            or "no object and none predicted",
            unsafe_allow_html=True,
        )
    if labels_met.scorable:
        ev = segmentation.evaluate_segmentation(model, dataset, [row], space, IN_THIS_THREAD)
        present = {k: v for k, v in ev["per_class_iou"].items() if v is not None}
        st.markdown(
            f"This image: pixel accuracy **{ev['pixel_acc']:.3f}**, mean IoU **{ev['miou']:.3f}**"
            f" ({space.upper()} labels)"
        )
        st.plotly_chart(iou_bars(present, "IoU per class, this image"), key="s_img_iou")

st.subheader("Evaluate the current Browse filter")
if not labels_met.scorable:
    st.caption("Nothing to score with this model on this dataset (see above).")
    st.stop()
ev = run_on_filter.evaluate_on_filter(
    run_on_filter.RunBlock(
        "s",
        button="Evaluate current filter",
        working="segmenting",
        what=" · computed like torchvision's segmentation reference (255 ignored), at the "
        "original image size",
    ),
    source,
    index,
    (model,),
    lambda rows, options: segmentation.evaluate_segmentation(model, dataset, rows, space, options),
)
if ev is not None:
    st.markdown(
        f"**{ev['model']}** [{'UNTRAINED' if ev['untrained'] else ev['weights']}] on "
        f"{ev['images']:,} images: pixel accuracy **{ev['pixel_acc']:.3f}**, "
        f"mean IoU **{ev['miou']:.3f}**"
    )
    if not ev["images"]:
        st.info("No image of the filter could be read: nothing to score.")
    else:
        c1, c2 = st.columns(2)
        c1.plotly_chart(confusion_heatmap(ev["classes"], np.array(ev["confusion"])), key="s_conf")
        c2.plotly_chart(iou_bars(ev["per_class_iou"]), key="s_iou")
