"""Classify: a classifier on one image (whole image and each object's crop) or on the filter."""

import numpy as np
import pandas as pd
import streamlit as st

from explorer.app import widgets as ui
from explorer.coco.labels import dataset_label_map
from explorer.errors import ExplorerError
from explorer.inference import classification
from explorer.inference import runner as infer
from explorer.inference.cache import predict
from explorer.viz import figures as charts
from explorer.viz import overlays as render

source, index, model = ui.model_page("Classify", "classify", "c")
images = source.images_dir
mapping = dataset_label_map(model.label_space, model.class_names, index.categories)
names = {c["id"]: c["name"] for c in index.categories}

image_id = ui.chosen_image(index, "c")
if image_id is not None:
    row = index.image_row(image_id)
    left, right = st.columns([1, 1])
    jpeg, notes = ui.overlay_jpeg(
        source.annotations, source.images, image_id, render.OverlayOptions(masks=False, alpha=0.0)
    )
    left.image(jpeg, output_format="JPEG", caption=f"{index.images['file_name'][row]}")
    for note in notes:
        left.warning(note)
    try:
        ((_, whole, err),) = predict(
            model, index, images, infer.items_for_images(index, [row]), workers=0
        )
        crops = list(predict(model, index, images, infer.items_for_crops(index, [row]), workers=0))
    except ExplorerError as e:
        st.error(str(e))
        st.stop()
    if whole is None:
        right.error(err)
    else:
        top, prob = whole
        right.plotly_chart(
            charts.topk_bars(
                [model.class_names[t] for t in top[:5]],
                [float(p) for p in prob[:5]],
                [names.get(mapping[t], "") if mapping[t] is not None else "" for t in top[:5]],
                f"Whole image, top 5{' (UNTRAINED)' if model.untrained else ''}",
            ),
            key="c_topk",
        )
    if crops:
        ann_row = {int(index.annotations["id"][a]): int(a) for a in index.annotation_rows(row)}
        rows = []
        for it, out, _err in crops:
            ann = it.annotation_id
            a = ann_row[ann]
            truth = int(index.annotations["category_id"][a])
            top, prob = out if out is not None else ([0], [0.0])
            guess = mapping[int(top[0])]
            mark = (
                "—"
                if truth not in {m for m in mapping if m is not None}
                else "✓"
                if guess == truth
                else "✗"
            )
            rows.append(
                {
                    "crop": ui.crop_data_url(source.annotations, source.images, ann, 64),
                    "annotation": ann,
                    "truth": names[truth],
                    "prediction": model.class_names[int(top[0])],
                    "as category": names.get(guess, "no counterpart")
                    if guess is not None
                    else "no counterpart",
                    "probability": float(prob[0]),
                    "right": mark,
                }
            )
        st.subheader("Objects (each annotation's box with 10% context)")
        st.dataframe(
            pd.DataFrame(rows),
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
flt = st.session_state.get("b_filter")
rows_f = ui.filtered_image_rows(source.annotations, flt) if flt else np.arange(index.num_images)
st.caption(f"{len(rows_f):,} images, every non-crowd object's crop")
key = ui.result_key(source, index, rows_f, model)
if st.button("Run on current filter", key="c_run"):
    table = ui.run_with_progress(
        "classifying crops", classification.classification_table, model, index, images, True, rows_f
    )
    if table is not None:
        score = classification.classification_scores(model, table, index.categories)
        st.session_state["c_result"] = (key, model.display_name, score, table)
if st.session_state.get("c_result", (None,))[0] == key:  # only for this dataset, filter and model
    _, label, score, table = st.session_state["c_result"]
    if score["objects"]:
        st.markdown(
            f"**{label}**: top-1 **{score['top1']:.3f}**, top-5 **{score['top5']:.3f}** on "
            f"{score['objects']:,} objects ({score['not_comparable']:,} of categories it cannot "
            "name)"
        )
    else:
        st.warning(
            f"{label} has no label for any category of these {score['not_comparable']:,} objects: "
            "nothing to score: its label space does not cover these categories."
        )
    accuracy = classification.accuracy_per_category(model, table, index.categories)
    st.plotly_chart(charts.accuracy_by_category(accuracy), key="c_acc")
