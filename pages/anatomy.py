"""Anatomy: how a CNN sees one of your images, layer by layer (table, feature maps, ReLU, pooling, softmax)."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
import torch
from PIL import Image

from explorer.app import widgets as ui
from explorer.models import anatomy
from explorer.viz import overlays as render

source, index = ui.page_dataset()
st.title("Anatomy")
st.caption(
    "Feature maps get smaller and more abstract layer by layer; ReLU turns negative responses into 0; "
    "pooling keeps the strongest response of each window; softmax turns the last layer into a distribution."
)
task = st.radio(
    "Network",
    ["classify", "segment"],
    horizontal=True,
    key="a_task",
    format_func={"classify": "classifier (AlexNet)", "segment": "segmenter (DeepLabV3)"}.get,
)
model = ui.model_picker(task, "a", source.annotations)
if model is None:
    st.stop()
image_id = ui.chosen_image(index, "a")
if image_id is None or source.images_dir is None:
    st.stop()
row = index.image_row(image_id)
w, h = int(index.images["width"][row]), int(index.images["height"][row])
rgb, note = render.load_image(index, source.images_dir, row)
if note:
    st.error(note)
    st.stop()
x = model.preprocess(torch.from_numpy(np.array(rgb)).permute(2, 0, 1))[None].to(model.device)
module = model.module
rows = anatomy.layer_table(module, x.shape[-2], x.shape[-1], softmax=task == "classify")

st.subheader(f"Layers at {x.shape[-2]}x{x.shape[-1]} input")
table = pd.DataFrame(
    [
        {
            "#": i,
            "layer": r.describe().split()[0],
            "module": r.name,
            "input": " x ".join(map(str, r.in_shape[1:] + r.in_shape[:1]))
            if len(r.in_shape) == 3
            else str(r.in_shape[0]),
            "output": " x ".join(map(str, r.out_shape[1:] + r.out_shape[:1]))
            if len(r.out_shape) == 3
            else str(r.out_shape[0]),
            "params": r.params,
            "MACs": r.macs,
            "folded": ", ".join(r.folded),
        }
        for i, r in enumerate(rows)
    ]
)
st.dataframe(table, hide_index=True, key="a_table", height=min(420, 38 + 35 * len(table)))
st.caption(
    f"{sum(r.params for r in rows):,} parameters, {sum(r.macs for r in rows) / 1e9:.2f} GMAC per image; "
    f"weights: {model.display_name}"
)
maps = [(i, r) for i, r in enumerate(rows) if len(r.out_shape) == 3]
fig = go.Figure()
fig.add_scatter(
    x=[i for i, _ in maps],
    y=[r.out_shape[1] * r.out_shape[2] for _, r in maps],
    name="H x W (pixels)",
)
fig.add_scatter(
    x=[i for i, _ in maps], y=[r.out_shape[0] for _, r in maps], name="channels", yaxis="y2"
)
fig.update_layout(
    title="Feature-map size shrinks while channels grow",
    xaxis_title="layer",
    yaxis={"title": "H x W", "type": "log", "dtick": 1},
    yaxis2={
        "title": "channels",
        "overlaying": "y",
        "side": "right",
        "type": "linear",
        "rangemode": "tozero",
        "showgrid": False,
        "tickmode": "linear",
        "dtick": 64,
    },
    template="plotly_white",
    margin={"l": 10, "r": 10, "t": 40, "b": 10},
)
st.plotly_chart(fig, key="a_sizes")

convs = [(i, r) for i, r in maps if r.kind == "conv"]
pools = [(i, r) for i, r in maps if r.kind in ("max", "avg")]
names = [r.name for _, r in maps]
acts = anatomy.capture(module, x, names)

st.subheader("Feature maps")
label = {f"{i}: {r.kind} {r.name}": r for i, r in maps}
pick = st.selectbox("Layer", list(label), key="a_layer")
layer = label[pick]
fmap = acts[layer.name][0]
channels = anatomy.top_channels(fmap, 16)
st.image(
    anatomy.tile([fmap[c] for c in channels]),
    caption=f"the 16 most active of {fmap.shape[0]} channels "
    f"({fmap.shape[1]} x {fmap.shape[2]}), each normalised",
    width=480,
)
channel = st.slider("Channel over the image", 0, fmap.shape[0] - 1, channels[0], key="a_channel")
heat = fmap[channel]
heat = ((heat - heat.min()) / (heat.max() - heat.min() + 1e-8) * 255).byte().cpu().numpy()
big = np.asarray(Image.fromarray(heat).resize((w, h), Image.BILINEAR))
colours = np.stack([np.linspace(0, 255, 256), np.zeros(256), np.linspace(255, 0, 256)], 1).astype(
    np.uint8
)
st.image(
    render.encode_jpeg(render.blend_labels(rgb, big, colours, 0.55, skip=())),
    output_format="JPEG",
    caption=f"channel {channel} of {layer.name}, upsampled over the image (red = strong)",
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
    which = pre[st.selectbox("Convolution", list(pre), key="a_relu")]
    before = acts[which.name][0]
    c = anatomy.top_channels(before, 1)[0]
    after = before.clamp(min=0)
    a, b = st.columns(2)
    a.image(
        anatomy.tile([before[c], after[c]], columns=2, cell=200),
        caption="channel before and after ReLU",
    )
    hist = go.Figure()
    hist.add_histogram(x=before[c].flatten().cpu().numpy(), name="before", opacity=0.6)
    hist.add_histogram(x=after[c].flatten().cpu().numpy(), name="after", opacity=0.6)
    hist.update_layout(
        barmode="overlay",
        title=f"{(before[c] < 0).float().mean():.0%} of the values were negative",
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    b.plotly_chart(hist, key="a_hist")

if pools:
    st.subheader("Pooling: compress, keep the strongest")
    options = {f"{i}: {r.kind} {r.name}": (i, r) for i, r in pools}
    i, pool = options[st.selectbox("Pooling layer", list(options), key="a_pool")]
    prev = next((r for j, r in reversed(maps) if j < i), None)
    if prev is not None:
        before, after = acts[prev.name][0], acts[pool.name][0]
        c = anatomy.top_channels(after, 1)[0]
        st.image(
            anatomy.tile([before[c], after[c]], columns=2, cell=200),
            caption=f"{before.shape[1]}x{before.shape[2]} -> {after.shape[1]}x{after.shape[2]} "
            f"({before.shape[1] * before.shape[2] / (after.shape[1] * after.shape[2]):.1f}x fewer values)",
        )

st.subheader("Output")
out = acts["__output__"][0]
if task == "classify":
    prob = torch.softmax(out, 0)
    top = torch.argsort(prob, descending=True)[:10].tolist()
    bars = go.Figure(
        go.Bar(
            x=[float(prob[t]) for t in top][::-1],
            y=[model.class_names[t] for t in top][::-1],
            orientation="h",
        )
    )
    bars.update_layout(
        title="softmax: the top 10 classes",
        xaxis={"range": [0, 1]},
        template="plotly_white",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    st.plotly_chart(bars, key="a_softmax")
else:
    scores = torch.softmax(out, 0)
    present = torch.argsort(scores.flatten(1).mean(1), descending=True)[:8].tolist()
    cls = st.selectbox(
        "Class score map", present, format_func=lambda k: model.class_names[k], key="a_class"
    )
    m = (scores[cls] * 255).byte().cpu().numpy()
    big = np.asarray(Image.fromarray(m).resize((w, h), Image.BILINEAR))
    st.image(
        render.encode_jpeg(render.blend_labels(rgb, big, colours, 0.55, skip=())),
        output_format="JPEG",
        caption=f"probability of '{model.class_names[cls]}' per pixel, upsampled over the image",
        width=480,
    )
