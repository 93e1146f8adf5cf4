"""The model picker and the head of a model page (dataset, title, model, image).

A model is loaded once per (name, weights, device, encoder) per process and shared by every
session (:func:`explorer.app.caches.load_model`); the picker offers the registry's models, then
the best checkpoints of finished training runs.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from explorer.app import caches, state
from explorer.app.dataset import page_dataset
from explorer.app.url import parse_id
from explorer.coco import CocoIndex
from explorer.errors import ExplorerError
from explorer.paths import atomic_write_bytes, cache_dir
from explorer.types import DEVICES, Task

WEIGHT_CHOICES = ("Published", "Untrained", "File or run folder")
_PUBLISHED, _UNTRAINED, _FILE = WEIGHT_CHOICES
# The browser holds a number input's value as a JavaScript number: exact up to 2**53 - 1, and
# Streamlit refuses a larger value with an exception.
_WIDGET_MAX = 2**53 - 1


def _save_upload(data: bytes, name: str) -> str:
    """An uploaded weights file, kept under <cache>/uploads by content hash (it is read with
    ``weights_only`` like any other file)."""
    suffix = ".pt" if name.endswith(".pt") else ".pth"
    path = cache_dir("uploads") / f"{hashlib.sha1(data).hexdigest()[:16]}{suffix}"
    if not path.is_file():
        atomic_write_bytes(path, data)
    return str(path)


def _load(name: str, weights: str, device: str, encoder: str = "", annotations: str = ""):
    """The cached model, or None after showing why it cannot be loaded."""
    from explorer.models import choose_device

    try:
        stamp = caches.weights_stamp(weights)
        return caches.load_model(name, weights, choose_device(device), encoder, annotations, stamp)
    except ExplorerError as e:
        st.warning(f"{e}")
        return None


def _trained_run(run, device: str, column):
    column.markdown(
        f"**{run.model}** trained here, best {run.best_metric} "
        f"{run.best if run.best is not None else float('nan'):.3f}"
    )
    model = _load(run.model, str(run.path), device)
    if model is not None:
        st.caption(f"{model.display_name} on {model.device}")
    return model


def _weights_choice(key: str, choice_column, path_column) -> str | None:
    """The weights argument the widgets ask for ('' = published), or None for "File" without a
    path yet."""
    from explorer.models import UNTRAINED

    choice = choice_column.radio(
        "Weights",
        WEIGHT_CHOICES,
        key=f"{key}_weights",
        horizontal=True,
        help="Published: torchvision's files (downloaded once, or put in place by hand). "
        "Untrained: random weights, only to try the page. File: a state_dict, checkpoint "
        "or training run folder.",
    )
    path = path_column.text_input(
        "Weights file or run folder",
        key=f"{key}_path",
        disabled=choice != _FILE,
        placeholder="runs/… or alexnet.pth",
    )
    if choice == _PUBLISHED:
        return ""
    if choice == _UNTRAINED:
        return UNTRAINED
    upload = st.file_uploader(
        "…or upload a weights file (.pth / .pt)", type=["pth", "pt"], key=f"{key}_upload"
    )
    if upload is not None:
        path = _save_upload(upload.getvalue(), upload.name)
    return path.strip() or None


def model_picker(task: Task, key: str, annotations: str):
    """Model, weights and device widgets: the loaded model, or None after showing why not."""
    from explorer.models import UNTRAINED, get_spec, list_models
    from explorer.training.runs import trained_checkpoints

    trained = {f"run: {r.path.name}": r for r in trained_checkpoints(task)}
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    name = c1.selectbox(
        "Model",
        list_models(task) + list(trained),
        key=f"{key}_model",
        help="Registry models, then the best checkpoints of finished training runs. "
        + "; ".join(f"{n}: {get_spec(n).description}" for n in list_models(task)),
    )
    device = c4.selectbox("Device", DEVICES, key=f"{key}_device")
    if name in trained:
        return _trained_run(trained[name], device, c2)
    weights = _weights_choice(key, c2, c3)
    spec = get_spec(name)
    encoder = ""
    if spec.encoders:
        default = spec.encoders.index(spec.default_encoder)
        encoder = st.selectbox("Encoder", spec.encoders, index=default, key=f"{key}_encoder")
    if weights is None:
        st.info("Give a weights file or a training run folder.")
        return None
    learns_classes = spec.label_space == "dataset" and weights == UNTRAINED
    model = _load(name, weights, device, encoder, annotations if learns_classes else "")
    if model is None:
        return None
    if model.untrained:
        st.error(
            f"{name} is UNTRAINED: random weights. Its outputs below mean nothing; they only show "
            "the pipeline working.",
            icon=":material/warning:",
        )
    else:
        st.caption(f"{model.display_name} on {model.device}")
    return model


def model_page(title: str, task: Task, key: str):
    """The head of a model page: dataset, title, model picker; stops the page without a model."""
    source, index = page_dataset()
    st.title(title)
    model = model_picker(task, key, source.annotations)
    if model is None:
        st.stop()
    return source, index, model


def _url_image(url: str | None) -> int | None:
    """The image id a ``?image_id=`` asks for, or None (after a one-line warning) when it is not
    an id the number input can hold: ASCII digits up to JavaScript's largest exact integer."""
    wanted = parse_id(url)
    if url and (wanted is None or wanted > _WIDGET_MAX):
        st.warning(f"Ignored image_id={url[:40]!r} in the address: not an image id.")
        return None
    return wanted


def chosen_image(index: CocoIndex, key: str) -> int | None:
    """The image a model page works on: ``?image_id=`` (links from Browse), else the one open in
    Browse, else the first image; kept in the URL. An id typed in the box wins over the URL
    (the URL follows it): the URL counts only when it says something this page did not write."""
    ids = index.images["id"]
    url = st.query_params.get("image_id")
    widget, written = f"{key}_image", f"{key}_image_written"
    recent = st.session_state.get(written, [])
    if widget not in st.session_state or (url and url not in recent):
        first = min(max(int(ids[0]), 0), _WIDGET_MAX) if len(ids) else 0
        wanted = _url_image(url)
        wanted = wanted if wanted is not None else state.browse_image()
        ok = wanted is not None and 0 <= wanted <= _WIDGET_MAX  # Browse takes any int64 id
        st.session_state[widget] = int(wanted) if ok else first
        recent = [*recent, url] if url else recent
    image_id = int(
        st.number_input(
            "Image id",
            min_value=0,
            max_value=_WIDGET_MAX,
            step=1,
            key=widget,
            help="Any image id of the dataset (Browse links here with its image)",
        )
    )
    st.session_state[written] = [*recent[-7:], str(image_id)]
    if not np.isin(image_id, ids):
        st.warning(f"No image with id {image_id} in this dataset.")
        return None
    st.query_params["image_id"] = str(image_id)
    return image_id
