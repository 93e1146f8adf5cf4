"""The model picker and the head of a model page (dataset, title, model, image).

A model is loaded once per (name, weights, device, encoder) per process and shared by every
session (:func:`explorer.app.caches.load_model`); the picker offers the best checkpoints of
finished training runs trained on the open dataset's classes (the best one is the default), the
registry's models, then the other runs. :func:`quality_notice` shows a model's own validation
quality next to the results a page draws from it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from explorer.app import caches, state
from explorer.app.dataset_picker import page_dataset
from explorer.coco import CocoIndex
from explorer.coco.view_state import parse_id
from explorer.errors import ExplorerError
from explorer.models.tasks import task_kind
from explorer.models.weights import LoadedModel
from explorer.paths import atomic_write_bytes, cache_dir
from explorer.types import DEVICES, Category, Task

if TYPE_CHECKING:
    from explorer.training.runs import RunInfo

WEIGHT_CHOICES = ("Published", "Untrained", "File or run folder")
_PUBLISHED, _UNTRAINED, _FILE = WEIGHT_CHOICES
# The browser holds a number input's value as a JavaScript number: exact up to 2**53 - 1, and
# Streamlit refuses a larger value with an exception.
_WIDGET_MAX = 2**53 - 1
DEVICE_SELECT_PX = 110  # "auto", "cuda" whole, beside the select's arrow


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
        choice = caches.ModelChoice(name, weights, choose_device(device), encoder, annotations)
        return caches.load_model(choice, caches.weights_stamp(weights))
    except ExplorerError as e:
        st.warning(f"{e}")
        return None


def _trained_run(run: _Run, device: str):
    model = _load(run.info.model, str(run.info.path), device)
    if model is not None:
        quality_notice(model, f"{model.display_name} on {model.device}")
    if not run.matches:
        st.warning(
            f"Run {run.info.path.name} was trained on other classes: none of them is a category "
            'of the open dataset, so every prediction reads "no counterpart". Pick a run '
            "trained on this dataset, or train one on the Train page.",
            icon=":material/warning:",
        )
    return model


def quality_notice(model: LoadedModel, lead: str = "") -> None:
    """The model's own validation quality (in the picker, and next to the results a page draws
    from it): a caption, or a plain warning when it is weak (below its task's threshold, or
    untrained). ``lead`` names the model (default: its display name)."""
    quality = model.quality
    lead = lead or model.display_name
    warning = quality.warning()
    if warning:
        st.warning(f"{lead}: {warning}", icon=":material/warning:")
    else:
        st.caption(f"{lead} · {quality.describe()}")


@dataclass(frozen=True)
class _Run:
    """A training run as a picker offers it: its summary and how much of the open dataset's
    categories its classes name (0: trained on another dataset; its predictions would all read
    "no counterpart")."""

    info: RunInfo
    coverage: float

    @property
    def matches(self) -> bool:
        return self.coverage > 0


def _dataset_categories(annotations: str) -> list[Category]:
    """The open dataset's categories ([] when it cannot be read: no run is then preferred)."""
    try:
        return caches.get_index(annotations).categories if annotations else []
    except ExplorerError:
        return []


def _coverage(run: RunInfo, categories: list[Category]) -> float:
    """The share of ``categories`` that the run's classes name (matched by name, as a trained
    model's labels are: :func:`explorer.coco.labels.dataset_label_map`)."""
    from explorer.coco.labels import dataset_label_map
    from explorer.training.runs import read_class_names

    if not categories:
        return 0.0
    named = dataset_label_map("dataset", read_class_names(run.path), categories)
    return len({c for c in named if c is not None}) / len(categories)


def _runs_best_first(task: Task, categories: list[Category]) -> list[_Run]:
    """The task's runs with a best.pt: finished ones first; among them those trained on the open
    dataset's categories (the most of them first), then the best score (scores of runs trained
    on other data say nothing here)."""
    from explorer.training.runs import trained_checkpoints

    runs = [_Run(r, _coverage(r, categories)) for r in trained_checkpoints(task)]
    return sorted(
        runs,
        key=lambda r: (r.info.status != "finished", -r.coverage, -(r.info.best or 0.0)),
    )


def _run_label(run: _Run) -> str:
    """A run as the picker shows it, whole: folder, model, best score, status when not done,
    and whether it was trained on other categories than the open dataset's."""
    info = run.info
    score = f"{info.best_metric} {info.best:.3f}" if info.best is not None else "no score yet"
    status = "" if info.status == "finished" else f" · {info.status}"
    other = "" if run.matches else " · other classes"
    return f"run {info.path.name} · {info.model} · best {score}{status}{other}"


def _weights_choice(name: str, key: str, choice_column, path_column) -> tuple[str | None, str]:
    """``(choice, weights argument)``: the radio's choice (None: nothing chosen yet, when the
    published weights are not on this machine) and the weights it asks for ('' = published,
    '' too for "File" without a path yet)."""
    from explorer.models.weights import UNTRAINED_WORD, published_here

    choice = choice_column.radio(
        "Weights",
        WEIGHT_CHOICES,
        index=0 if published_here(name) else None,
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
    if choice != _FILE:
        return choice, UNTRAINED_WORD if choice == _UNTRAINED else ""
    upload = st.file_uploader(
        "…or upload a weights file (.pth / .pt)", type=["pth", "pt"], key=f"{key}_upload"
    )
    if upload is not None:
        path = _save_upload(upload.getvalue(), upload.name)
    return choice, path.strip()


def _no_weights(name: str, task: Task, key: str) -> None:
    """One line on what to do when there are no weights to load, a link to the Train page and a
    button that picks untrained weights."""
    from explorer.models import get_spec

    why = (
        "its published weights are not on this machine"
        if get_spec(name).weights_enum
        else "it has no published weights"
    )
    kind = task_kind(task).noun
    st.info(
        f"No trained {kind} here yet and {why}: train one on your data, or try the page with "
        "untrained (random) weights.",
        icon=":material/info:",
    )
    a, b = st.columns(2)  # half a page each: the link's label stays whole in a half-width picker
    a.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")

    def untrained() -> None:
        st.session_state[f"{key}_weights"] = _UNTRAINED

    b.button("Use untrained weights", key=f"{key}_use_untrained", on_click=untrained)


def _registry_model(name: str, task: Task, key: str, device: str, annotations: str):
    """The weights widgets of a registry model and the model they load (or None, said why)."""
    from explorer.models import get_spec
    from explorer.models.weights import UNTRAINED_WORD

    c2, c3 = st.columns([3, 4])
    choice, weights = _weights_choice(name, key, c2, c3)
    spec = get_spec(name)
    encoder = ""
    if spec.encoders:
        default = spec.encoders.index(spec.default_encoder)
        encoder = st.selectbox("Encoder", spec.encoders, index=default, key=f"{key}_encoder")
    if choice is None:
        _no_weights(name, task, key)
        return None
    if choice == _FILE and not weights:
        st.info("Give a weights file or a training run folder.")
        return None
    learns_classes = spec.label_space == "dataset" and weights == UNTRAINED_WORD
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
        quality_notice(model, f"{model.display_name} on {model.device}")
    return model


@dataclass(frozen=True)
class Choice:
    """What a model picker chose: the registry name of the architecture (a run's too), its
    encoder, and the loaded model (None when there are no weights to load yet)."""

    name: str
    encoder: str
    model: LoadedModel | None

    def input_size(self, rgb: np.ndarray | None) -> tuple[int, int]:
        """(height, width) of the model's input for an image (its preprocessing; without an
        image, a square one)."""
        from explorer.models import get_spec

        pre = self.model.preprocess if self.model else get_spec(self.name).preprocess
        return pre.output_size(*(rgb.shape[:2] if rgb is not None else (pre.resize, pre.resize)))


def pick_model(task: Task, key: str, annotations: str) -> Choice:
    """Model, weights and device widgets. The default is the best finished training run of the
    task trained on the open dataset's classes when there is one (runs trained on other classes
    come after the registry models, said so), else the first registry model with its published
    weights when they are on this machine; otherwise one line says what to do (nothing is
    loaded)."""
    from explorer.models import get_spec, list_models

    runs = _runs_best_first(task, _dataset_categories(annotations))
    trained = {f"run: {r.info.path.name}": r for r in runs}
    finished = [k for k, r in trained.items() if r.info.status == "finished"]
    ours = [k for k in finished if trained[k].matches]
    options = ours + list_models(task) + [k for k in trained if k not in ours]
    # a row that wraps: the Device select keeps the width of its longest value and moves under
    # the Model select when the picker is too narrow for both (a column share cut it to "a")
    row = st.container(horizontal=True)
    name = row.selectbox(
        "Model",
        options,
        key=f"{key}_model",
        format_func=lambda o: _run_label(trained[o]) if o in trained else o,
        help="Finished training runs on this dataset's classes (best first), registry models, "
        "then runs trained on other classes and unfinished runs. "
        + "; ".join(f"{n}: {get_spec(n).description}" for n in list_models(task)),
    )
    device = row.selectbox("Device", DEVICES, key=f"{key}_device", width=DEVICE_SELECT_PX)
    if finished and not ours:
        st.caption(
            f"None of the {len(finished)} finished {task_kind(task).noun} runs was trained on "
            "this dataset's classes: they are listed after the registry models."
        )
    if name in trained:
        run = trained[name]
        return Choice(run.info.model, "", _trained_run(run, device))
    model = _registry_model(name, task, key, device, annotations)
    encoder = st.session_state.get(f"{key}_encoder", "") if get_spec(name).encoders else ""
    return Choice(name, encoder, model)


def model_picker(task: Task, key: str, annotations: str) -> LoadedModel | None:
    """:func:`pick_model`'s loaded model, or None after showing why there is none."""
    return pick_model(task, key, annotations).model


def two_model_pickers(key: str, annotations: str) -> tuple[LoadedModel, LoadedModel]:
    """A classifier and a segmenter side by side (pickers ``<key>1`` and ``<key>2``); the page
    stops here until both are loaded."""
    left, right = st.columns(2)
    with left:
        st.markdown("**Classifier**")
        classifier = model_picker("classify", f"{key}1", annotations)
    with right:
        st.markdown("**Segmenter**")
        segmenter = model_picker("segment", f"{key}2", annotations)
    if classifier is None or segmenter is None:
        st.stop()
    return classifier, segmenter


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
        if wanted is None or not 0 <= wanted <= _WIDGET_MAX:  # Browse takes any int64 id
            wanted = first
        st.session_state[widget] = int(wanted)
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
