"""Compare: a classifier and a segmenter against each other and the truth, on the filter."""

import pandas as pd
import streamlit as st

from explorer.app import caches, dataset_picker, model_picker, run_on_filter
from explorer.coco.dataset import Dataset
from explorer.inference import compare
from explorer.inference.cache import predict_image
from explorer.inference.pair import ModelPair
from explorer.viz import overlays
from explorer.viz.figures.compare import accuracy_by_size, agreement_by_category, model_confusion

source, index = dataset_picker.page_dataset()
dataset = Dataset(index, source.images_dir)
st.title("Compare")
st.caption(
    "Each non-crowd object: the classifier's answer on its crop, the segmenter's majority label "
    "inside its true mask, both mapped into the dataset's categories."
)
classifier, segmenter = model_picker.two_model_pickers("k", source.annotations)

report = run_on_filter.evaluate_on_filter(
    run_on_filter.RunBlock(
        "k",
        button="Compare current filter",
        working="comparing",
        what=" (the Browse filter)",
        primary=True,
    ),
    source,
    index,
    (classifier, segmenter),
    lambda rows, options: compare.compare(
        ModelPair(classifier, segmenter), dataset, rows, options=options
    ),
)
if report is None:
    st.info("Press **Compare current filter**: predictions already made are reused from the cache.")
    st.stop()
s = report.summary
for model in (classifier, segmenter):
    model_picker.quality_notice(model)

c1, c2 = st.columns([1.3, 2])
c1.dataframe(
    pd.DataFrame(
        [
            [s["both_right"], s["only_segmenter_right"]],
            [s["only_classifier_right"], s["both_wrong"]],
        ],
        index=["classifier right", "classifier wrong"],
        columns=["segmenter right", "segmenter wrong"],
    ),
    key="k_2x2",
)
c1.caption(
    f"{s['objects']:,} objects; {s['not_comparable']:,} not comparable (a model has no label for "
    "the true category)"
)
c2.plotly_chart(agreement_by_category(report.per_category), key="k_cats")
c3, c4 = st.columns(2)
c3.plotly_chart(model_confusion(report.confusion), key="k_conf")
c4.plotly_chart(accuracy_by_size(report.by_size), key="k_size")

st.subheader("Disagreements")
objects = pd.DataFrame(report.objects)
dis = objects[objects["outcome"].isin(["only_classifier_right", "only_segmenter_right"])]
order = st.radio("Sort by", ["classifier confidence", "object size"], horizontal=True, key="k_sort")
dis = dis.sort_values(
    "classifier_prob" if order == "classifier confidence" else "area", ascending=False
)
st.caption(
    f"{len(dis):,} objects where exactly one model is right (the first 200 with thumbnails); "
    "choose a row to see it"
)
dis = dis.head(200).copy()
dis.insert(
    0,
    "object",
    [caches.crop_data_url(source.annotations, source.images, int(a)) for a in dis["annotation_id"]],
)
picked = st.dataframe(
    dis[
        [
            "object",
            "annotation_id",
            "image_id",
            "true_category",
            "classifier_category",
            "classifier_prob",
            "segmenter_category",
            "segmenter_coverage",
            "size",
            "outcome",
        ]
    ],
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="k_dis",
    row_height=56,
    column_config={"object": st.column_config.ImageColumn("object", width="small")},
)
sel = picked.selection.rows if picked else []
if sel:
    o = dis.iloc[sel[0]]
    row = index.image_row(int(o["image_id"]))
    _, out, err = predict_image(segmenter, dataset, row)
    rgb, _ = overlays.load_image(dataset, row)
    colours = overlays.label_colours(index, segmenter.category_of_label(index.categories))
    left, right = st.columns(2)
    gt, _ = caches.overlay_jpeg(
        source.annotations,
        source.images,
        int(o["image_id"]),
        overlays.OverlayOptions(highlight=int(o["annotation_id"]), alpha=0.5),
    )
    left.image(
        gt,
        caption=f"truth: {o['true_category']} (highlighted)",
        output_format="JPEG",
        width="stretch",
    )
    segmented = rgb if out is None else overlays.blend_labels(rgb, out[0], colours, 0.55)
    if out is None:
        right.warning(f"No segmentation: {err}")
    right.image(
        overlays.encode_jpeg(segmented),
        output_format="JPEG",
        width="stretch",
        caption=f"classifier: {o['classifier_category']} ({o['classifier_prob']:.2f}) · segmenter: "
        f"{o['segmenter_category']} ({o['segmenter_coverage']:.0%} of the mask)",
    )
    if out is not None:
        right.markdown(
            overlays.legend_markdown(overlays.legend(out[0], colours, segmenter.class_names))
            or "nothing segmented but background",
            unsafe_allow_html=True,
        )

with st.expander("Label spaces: which categories each model can name"):
    st.dataframe(pd.DataFrame(report.coverage), hide_index=True, key="k_cov")
    voc, imagenet = caches.label_space_tables()
    a, b = st.columns(2)
    a.markdown("**Pascal VOC-21 → COCO** (DeepLabV3's published labels)")
    a.dataframe(voc, hide_index=True, key="k_voc")
    b.markdown("**ImageNet-1k → COCO** (AlexNet's published labels): classes per COCO category")
    b.dataframe(imagenet, hide_index=True, key="k_imagenet")
    st.caption(
        "ImageNet-1k → COCO and VOC-21 → COCO maps live in explorer/coco/labels.py and "
        "explorer/coco/data/imagenet_to_coco.json (e.g. every dog breed → dog; ImageNet's 'kite' "
        "is a bird)."
    )
