"""Classify: a classifier on one image (whole image and each object's crop) or on the filter."""

import streamlit as st

from explorer.app import caches, model_picker, run_on_filter
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference import classification
from explorer.inference.cache import predict_image
from explorer.inference.options import IN_THIS_THREAD
from explorer.viz import overlays
from explorer.viz.figures.predictions import accuracy_by_category, topk_bars

MARKS = {"right": "✓", "wrong": "✗", "not comparable": "—", "unreadable": "unreadable"}

source, index, model = model_picker.model_page("Classify", "classify", "c")
dataset = Dataset(index, source.images_dir)
mapping = model.category_of_label(index.categories)
names = {c["id"]: c["name"] for c in index.categories}

image_id = model_picker.chosen_image(index, "c")
if image_id is not None:
    row = index.image_row(image_id)
    left, right = st.columns([1, 1])
    no_masks = overlays.OverlayOptions(masks=False, alpha=0.0)
    jpeg, notes = caches.overlay_jpeg(source.annotations, source.images, image_id, no_masks)
    left.image(jpeg, output_format="JPEG", caption=f"{index.images['file_name'][row]}")
    for note in notes:
        left.warning(note)
    try:
        _, whole, err = predict_image(model, dataset, row)
        crops = classification.classification_table(model, dataset, True, [row], IN_THIS_THREAD)
    except ExplorerError as e:
        st.error(str(e))
        st.stop()
    if whole is None:
        right.error(err)
    else:
        top, prob = whole[0][:5], whole[1][:5]
        chart = topk_bars(
            [model.class_names[t] for t in top],
            [float(p) for p in prob],
            [names.get(mapping[t], "") if mapping[t] is not None else "" for t in top],
            f"Whole image, top 5{' (UNTRAINED)' if model.untrained else ''}",
        )
        right.plotly_chart(chart, key="c_topk")
    if len(crops):
        verdict = classification.verdicts(model, crops, index.categories)
        table = crops.reindex(columns=["annotation_id", "true_category", "top1"]).assign(
            crop=[
                caches.crop_data_url(source.annotations, source.images, int(a), 64)
                for a in crops["annotation_id"]
            ],
            category=crops.get("mapped_category", "").replace("", "no counterpart"),
            probability=crops.get("top1_prob", 0.0),
            right=[MARKS[v] for v in verdict],
        )
        st.subheader("Objects (each annotation's box with 10% context)")
        st.dataframe(
            table[
                ["crop", "annotation_id", "true_category", "top1", "category"]
                + ["probability", "right"]
            ].rename(
                columns={
                    "annotation_id": "annotation",
                    "true_category": "truth",
                    "top1": "prediction",
                    "category": "as category",
                }
            ),
            hide_index=True,
            key="c_crops",
            row_height=70,
            column_config={
                "crop": st.column_config.ImageColumn("crop", width="small"),
                "probability": st.column_config.ProgressColumn(
                    min_value=0, max_value=1, format="%.2f"
                ),
            },
        )
        st.caption("✓ right, ✗ wrong, — the model has no label for this category (not counted).")

st.subheader("On the current Browse filter")
table = run_on_filter.evaluate_on_filter(
    run_on_filter.RunBlock(
        "c",
        button="Run on current filter",
        working="classifying crops",
        what=", every non-crowd object's crop",
    ),
    source,
    index,
    (model,),
    lambda rows, options: classification.classification_table(model, dataset, True, rows, options),
)
if table is not None:
    model_picker.quality_notice(model)
    score = classification.classification_scores(model, table, index.categories)
    if score["objects"]:
        st.markdown(
            f"**{model.display_name}**: top-1 **{score['top1']:.3f}**, top-5 "
            f"**{score['top5']:.3f}** on {score['objects']:,} objects "
            f"({score['not_comparable']:,} of categories it cannot name)"
        )
    else:
        st.warning(
            f"{model.display_name} has no label for any category of these "
            f"{score['not_comparable']:,} objects: nothing to score: its label space does not "
            "cover these categories."
        )
    accuracy = classification.accuracy_per_category(model, table, index.categories)
    st.plotly_chart(accuracy_by_category(accuracy), key="c_acc")
