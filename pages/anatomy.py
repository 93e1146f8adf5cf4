"""Anatomy: how a CNN sees one of your images, layer by layer (maps, ReLU, pooling, softmax)."""

import streamlit as st

from explorer.app import caches, dataset_picker, model_picker
from explorer.coco.dataset import Dataset
from explorer.models import anatomy
from explorer.models.tasks import task_kind
from explorer.types import TASKS
from explorer.viz import overlays
from explorer.viz.figures.anatomy import (
    feature_map_sizes,
    layer_table,
    relu_histogram,
    softmax_bars,
)

source, index = dataset_picker.page_dataset()
st.title("Anatomy")
st.caption(
    "Feature maps get smaller and more abstract layer by layer; ReLU turns negative responses "
    "into 0; pooling keeps the strongest response of each window; softmax turns the last layer "
    "into a distribution."
)
task = st.radio(
    "Network",
    TASKS,
    horizontal=True,
    key="a_task",
    format_func={"classify": "classifier (AlexNet)", "segment": "segmenter (DeepLabV3)"}.get,
)
kind = task_kind(task)
choice = model_picker.pick_model(task, "a", source.annotations)
model = choice.model
image_id = model_picker.chosen_image(index, "a")
rgb = None
if image_id is not None and source.images_dir is not None:
    rgb, note = overlays.load_image(Dataset(index, source.images_dir), index.image_row(image_id))
    if note:
        st.error(note)
        rgb = None
h, w = choice.input_size(rgb)
if model is not None and rgb is not None:
    x = anatomy.model_input(model, rgb)
    rows = anatomy.layer_table(model.module, h, w, softmax=kind.scores_per_image)
else:
    rows = caches.architecture_rows(choice.name, choice.encoder, h, w, kind.scores_per_image)

st.subheader(f"Layers at {h}x{w} input")
table = layer_table(rows)
st.dataframe(table, hide_index=True, key="a_table", height=38 + 35 * min(len(table), 30))
st.caption(
    f"{len(rows)} layers, {sum(r.params for r in rows):,} parameters, "
    f"{sum(r.macs for r in rows) / 1e9:.2f} GMAC per image; "
    + (f"weights: {model.display_name}" if model else "the table needs no weights")
)
if model is None or rgb is None:
    st.info(
        "Feature maps need weights and an image: choose a trained run, or untrained weights "
        "above, and an image of the dataset.",
        icon=":material/info:",
    )
    st.stop()
maps = [(i, r) for i, r in enumerate(rows) if len(r.out_shape) == 3]
st.plotly_chart(feature_map_sizes(maps), key="a_sizes")
convs = [(i, r) for i, r in maps if r.kind == "conv"]
pools = [(i, r) for i, r in maps if r.kind in ("max", "avg")]
acts = anatomy.capture(model.module, x, [r.name for _, r in maps])

st.subheader("Feature maps")
label = {f"{i}: {r.kind} {r.name}": (i, r) for i, r in maps}
number, layer = label[st.selectbox("Layer", list(label), key="a_layer")]
fmap = acts[layer.name][0]
channels = anatomy.top_channels(fmap, 16)
st.image(
    anatomy.tile([fmap[c] for c in channels]),
    caption=f"the 16 most active of {fmap.shape[0]} channels "
    f"({fmap.shape[1]} x {fmap.shape[2]}), each normalised",
    width=480,
)
channel = st.slider("Channel over the image", 0, fmap.shape[0] - 1, channels[0], key="a_channel")
st.image(
    overlays.encode_jpeg(overlays.heat_overlay(rgb, anatomy.to_uint8(fmap[channel]))),
    output_format="JPEG",
    caption=f"channel {channel} of {fmap.shape[0]} in layer {number} ({layer.kind} "
    f"{layer.name}), upsampled over the image (red = strong)",
    width=480,
)

first = next((r.module for _, r in convs), None)
if first is not None:
    st.subheader("First convolution's filters")
    st.image(
        anatomy.filter_tiles(first),
        caption=f"{first.out_channels} filters of "
        f"{first.kernel_size[0]}x{first.kernel_size[1]}x{first.in_channels}, as RGB",
        width=560,
    )

if convs:
    st.subheader("ReLU: negatives become 0")
    pre = {f"{i}: {r.name}": r for i, r in convs}
    before = acts[pre[st.selectbox("Convolution", list(pre), key="a_relu")].name][0]
    c = anatomy.top_channels(before, 1)[0]
    after = before.clamp(min=0)
    a, b = st.columns(2)
    a.image(
        anatomy.tile([before[c], after[c]], columns=2, cell=200),
        caption="channel before and after ReLU",
    )
    hist = relu_histogram(before[c].cpu().numpy(), after[c].cpu().numpy())
    b.plotly_chart(hist, key="a_hist")

if pools:
    st.subheader("Pooling: compress, keep the strongest")
    options = {f"{i}: {r.kind} {r.name}": (i, r) for i, r in pools}
    i, pool = options[st.selectbox("Pooling layer", list(options), key="a_pool")]
    prev = next((r for j, r in reversed(maps) if j < i), None)
    if prev is not None:
        before, after = acts[prev.name][0], acts[pool.name][0]
        c = anatomy.top_channels(after, 1)[0]
        fewer = before.shape[1] * before.shape[2] / (after.shape[1] * after.shape[2])
        st.image(
            anatomy.tile([before[c], after[c]], columns=2, cell=200),
            caption=f"{before.shape[1]}x{before.shape[2]} -> {after.shape[1]}x{after.shape[2]} "
            f"({fewer:.1f}x fewer values)",
        )

st.subheader("Output")
out = acts["__output__"][0]
if kind.scores_per_image:
    top, probs = anatomy.top_classes(out, 10)
    names = [model.class_names[t] for t in top]
    st.plotly_chart(softmax_bars(names, probs), key="a_softmax")
else:
    present, scores = anatomy.class_score_maps(out, 8)
    cls = st.selectbox(
        "Class score map", present, format_func=lambda k: model.class_names[k], key="a_class"
    )
    st.image(
        overlays.encode_jpeg(overlays.heat_overlay(rgb, scores[cls])),
        output_format="JPEG",
        caption=f"probability of '{model.class_names[cls]}' per pixel, upsampled over the image",
        width=480,
    )
