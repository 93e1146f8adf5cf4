"""The only Streamlit-aware module of the library: the dataset picker and cached getters.

Heavy objects (the index) go through ``st.cache_resource`` keyed by path strings; derived data
through ``st.cache_data`` keyed by ids and parameters; ``st.session_state`` holds only small
things (the current :class:`DatasetSource`, widget values).
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.coco import CocoIndex, fingerprint, open_index
from explorer.coco.filters import ImageFilter, filter_images
from explorer.coco.sources import (
    DatasetSource,
    find_splits,
    from_files,
    initial_source,
    sample_sources,
)
from explorer.errors import ExplorerError
from explorer.viz import overlays as render

_SOURCE = "dataset_source"


@st.cache_resource(show_spinner="Opening the annotation file…", max_entries=4)
def _index(annotations: str, file_fingerprint: str) -> CocoIndex:
    return open_index(annotations)


def get_index(annotations: str) -> CocoIndex:
    """The index of an annotation file, one per process (re-read when the file changes)."""
    try:
        fp = fingerprint(Path(annotations))
    except OSError as e:
        raise ExplorerError(f"{annotations}: cannot read ({e.strerror})") from None
    return _index(annotations, fp)


# Derived data is cached by the annotation file's fingerprint too: a changed file is a new key.


def filtered_image_rows(annotations: str, flt: ImageFilter) -> np.ndarray:
    return _filtered_image_rows(annotations, get_index(annotations).fingerprint, flt)


@st.cache_data(show_spinner=False, max_entries=64)
def _filtered_image_rows(annotations: str, fingerprint: str, flt: ImageFilter) -> np.ndarray:
    return filter_images(get_index(annotations), flt)


def overlay_jpeg(
    annotations: str, images: str, image_id: int, opts: render.OverlayOptions
) -> tuple[bytes, list[str]]:
    return _overlay_jpeg(annotations, get_index(annotations).fingerprint, images, image_id, opts)


@st.cache_data(show_spinner=False, max_entries=256)
def _overlay_jpeg(
    annotations: str, fingerprint: str, images: str, image_id: int, opts: render.OverlayOptions
) -> tuple[bytes, list[str]]:
    index = get_index(annotations)
    rgb, notes = render.compose_overlay(
        index, Path(images) if images else None, index.image_row(image_id), opts
    )
    return render.encode_jpeg(rgb), notes


def thumbnail_jpeg(annotations: str, images: str, image_id: int) -> bytes:
    return _thumbnail_jpeg(annotations, get_index(annotations).fingerprint, images, image_id)


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail_jpeg(annotations: str, fingerprint: str, images: str, image_id: int) -> bytes:
    index = get_index(annotations)
    return render.thumbnail_jpeg(index, Path(images) if images else None, index.image_row(image_id))


def _open(source: DatasetSource) -> CocoIndex:
    index = get_index(source.annotations)
    st.session_state[_SOURCE] = source
    return index


def _seed_picker(source: DatasetSource) -> None:
    """Show the start-up dataset in the picker (before its widgets exist)."""
    if source.label.startswith("sample "):
        st.session_state.update(ds_kind="Sample", ds_sample=source.label)
    else:
        st.session_state.update(ds_kind="Files", ds_ann=source.annotations, ds_images=source.images)


def _startup_source() -> DatasetSource:
    """``-- --coco/--images``, ``$EXPLORER_COCO``, else the sample's val split."""
    try:
        given = initial_source(sys.argv[1:], os.environ)
    except ExplorerError as e:
        st.error(f"Could not open the dataset given at start-up: {e}. Showing the sample instead.")
        given = None
    return given or sample_sources()[-1]


def dataset_sidebar() -> tuple[DatasetSource, CocoIndex]:
    """The sidebar's dataset picker; returns the current dataset (the last one that opened)."""
    if _SOURCE not in st.session_state:
        try:
            _open(_startup_source())
        except ExplorerError as e:
            st.error(f"Could not open the dataset: {e}. Showing the sample instead.")
            _open(sample_sources()[-1])
        _seed_picker(st.session_state[_SOURCE])
    side = st.sidebar
    side.header("Dataset")
    kind = side.radio(
        "Source",
        ["Sample", "COCO folder", "Files"],
        horizontal=True,
        key="ds_kind",
        help="The embedded sample, a COCO root folder (annotations/instances_*.json and "
        "train2017/, val2017/ ...), or an annotation file with its image folder.",
    )
    chosen: DatasetSource | None = None
    try:
        if kind == "Sample":
            samples = {s.label: s for s in sample_sources()}
            st.session_state.setdefault("ds_sample", list(samples)[-1])
            label = side.selectbox("Split", list(samples), key="ds_sample")
            if side.button("Open", key="ds_open_sample"):
                chosen = samples[label]
        elif kind == "COCO folder":
            root = side.text_input("COCO root folder", key="ds_root", placeholder="/data/coco")
            if root:
                splits = {s.label: s for s in find_splits(root)}
                label = side.selectbox("Split", list(splits), key="ds_split")
                if side.button("Open", key="ds_open_root"):
                    chosen = splits[label]
        else:
            ann = side.text_input(
                "Annotation file", key="ds_ann", placeholder="instances_val2017.json"
            )
            images = side.text_input(
                "Image folder", key="ds_images", placeholder="val2017 (optional)"
            )
            if side.button("Open", key="ds_open_files", disabled=not ann):
                chosen = from_files(ann, images)
        if chosen is not None:
            _open(chosen)
    except ExplorerError as e:
        side.error(f"{e}")
    source: DatasetSource = st.session_state[_SOURCE]
    try:
        index = get_index(source.annotations)
    except ExplorerError as e:  # the file went away since it was opened
        side.error(f"{e}. Back to the sample.")
        source = sample_sources()[-1]
        index = _open(source)
    crowd = int(np.count_nonzero(index.annotations["iscrowd"]))
    side.caption(
        f"**{source.label}** — {index.num_images:,} images, {index.num_annotations:,} annotations "
        f"({crowd:,} crowd), {len(index.categories)} categories · opened in "
        f"{index.load_seconds:.2f} s{' (cache)' if index.from_cache else ''}"
    )
    if not source.images:
        side.warning("No image folder: masks are drawn on a grey canvas.")
    return source, index


_frame = threading.local()


@contextmanager
def app_frame():
    """Marks a run of ``app.py`` (its sidebar, then the page it runs)."""
    _frame.active = True
    try:
        yield
    finally:
        _frame.active = False


def page_dataset() -> tuple[DatasetSource, CocoIndex]:
    """For pages: the current dataset.

    A page normally runs inside ``app.py``, which drew the dataset picker. A deep link into a
    page reaching a server that has not run ``app.py`` yet runs the page alone (Streamlit's
    legacy ``pages/`` mode): then the page draws the picker itself.
    """
    if not getattr(_frame, "active", False):
        st.set_page_config(page_title="COCO Explorer", layout="wide")
        return dataset_sidebar()
    source: DatasetSource = st.session_state[_SOURCE]
    return source, get_index(source.annotations)


# ---------------------------------------------------------------------------- models

WEIGHT_CHOICES = ("Published", "Untrained", "File or run folder")


def _save_upload(data: bytes, name: str) -> Path:
    """An uploaded weights file, kept under <cache>/uploads by content hash (read with weights_only)."""
    import hashlib

    from explorer.paths import cache_dir

    suffix = ".pt" if name.endswith(".pt") else ".pth"
    path = cache_dir("uploads") / f"{hashlib.sha1(data).hexdigest()[:16]}{suffix}"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


def _weights_stamp(weights: str) -> str:
    """Changes when a weights file is rewritten (a run's best.pt after each better epoch)."""
    from explorer.models.weights import file_key, resolve_weights_path

    if not weights or weights == "untrained":
        return ""
    try:
        return file_key(resolve_weights_path(weights))
    except (ExplorerError, OSError):
        return ""


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def _model(name: str, weights: str, device: str, encoder: str, annotations: str, stamp: str = ""):
    from explorer.models import load_model

    categories = get_index(annotations).categories if annotations else None
    return load_model(
        name, weights or None, device, encoder=encoder or None, dataset_categories=categories
    )


def model_picker(task: str, key: str, annotations: str):
    """Model, weights and device widgets; returns the loaded model, or None after showing why not.

    Models are loaded once per (name, weights, device, encoder) per process and shared by all
    sessions (``st.cache_resource``).
    """
    from explorer.models import UNTRAINED, choose_device, get_spec, list_models
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
    device = c4.selectbox("Device", ["auto", "cpu", "cuda"], key=f"{key}_device")
    if name in trained:
        run = trained[name]
        c2.markdown(
            f"**{run.model}** trained here, best {run.best_metric} "
            f"{run.best if run.best is not None else float('nan'):.3f}"
        )
        try:
            model = _model(
                run.model,
                str(run.path),
                choose_device(device),
                "",
                "",
                _weights_stamp(str(run.path)),
            )
        except ExplorerError as e:
            st.warning(f"{e}")
            return None
        st.caption(f"{model.display_name} on {model.device}")
        return model
    choice = c2.radio(
        "Weights",
        WEIGHT_CHOICES,
        key=f"{key}_weights",
        horizontal=True,
        help="Published: torchvision's files (downloaded once, or put in place by hand). "
        "Untrained: random weights, only to try the page. File: a state_dict, checkpoint "
        "or training run folder.",
    )
    path = c3.text_input(
        "Weights file or run folder",
        key=f"{key}_path",
        disabled=choice != WEIGHT_CHOICES[2],
        placeholder="runs/… or alexnet.pth",
    )
    if choice == WEIGHT_CHOICES[2]:
        upload = st.file_uploader(
            "…or upload a weights file (.pth / .pt)", type=["pth", "pt"], key=f"{key}_upload"
        )
        if upload is not None:
            path = str(_save_upload(upload.getvalue(), upload.name))
    encoder = ""
    encoders = get_spec(name).encoders
    if encoders:
        default = encoders.index(get_spec(name).default_encoder)
        encoder = st.selectbox("Encoder", encoders, index=default, key=f"{key}_encoder")
    weights = {
        WEIGHT_CHOICES[0]: "",
        WEIGHT_CHOICES[1]: UNTRAINED,
        WEIGHT_CHOICES[2]: path.strip(),
    }[choice]
    if choice == WEIGHT_CHOICES[2] and not weights:
        st.info("Give a weights file or a training run folder.")
        return None
    spec = get_spec(name)
    needs_classes = spec.label_space == "dataset" and weights == UNTRAINED
    try:
        model = _model(
            name,
            weights,
            choose_device(device),
            encoder,
            annotations if needs_classes else "",
            _weights_stamp(weights),
        )
    except ExplorerError as e:
        st.warning(f"{e}")
        return None
    if model.untrained:
        st.error(
            f"{name} is UNTRAINED: random weights. Its outputs below mean nothing; they only show the "
            "pipeline working.",
            icon=":material/warning:",
        )
    else:
        st.caption(f"{model.display_name} on {model.device}")
    return model


def model_page(title: str, task: str, key: str):
    """The head of a model page: dataset, title, model picker; stops the page without a model."""
    source, index = page_dataset()
    st.title(title)
    model = model_picker(task, key, source.annotations)
    if model is None:
        st.stop()
    return source, index, model


def chosen_image(index: CocoIndex, key: str) -> int | None:
    """The image a model page works on: ``?image_id=`` (links from Browse), else the one open in
    Browse, else the first image; kept in the URL."""
    ids = index.images["id"]
    url = st.query_params.get("image_id")
    if f"{key}_image" not in st.session_state or (
        url and url != str(st.session_state.get(f"{key}_image"))
    ):
        first = int(ids[0]) if len(ids) else 0
        wanted = int(url) if url and url.isdigit() else st.session_state.get("b_image") or first
        st.session_state[f"{key}_image"] = int(wanted)
    image_id = int(
        st.number_input(
            "Image id",
            min_value=0,
            step=1,
            key=f"{key}_image",
            help="Any image id of the dataset (Browse links here with its image)",
        )
    )
    if not np.isin(image_id, ids):
        st.warning(f"No image with id {image_id} in this dataset.")
        return None
    st.query_params["image_id"] = str(image_id)
    return image_id


def result_key(source: DatasetSource, index: CocoIndex, rows: np.ndarray, *models) -> str:
    """Identifies a saved page result: the dataset, the exact image rows and the models' weights."""
    import hashlib

    h = hashlib.sha1(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    for part in (
        index.fingerprint,
        source.images,
        *(f"{m.name}|{m.encoder}|{m.weights_key}" for m in models),
    ):
        h.update(str(part).encode())
    return h.hexdigest()


def run_with_progress(label: str, fn, *args, **kwargs):
    """Run ``fn(*args, progress=..., **kwargs)`` with an ``st.progress`` bar (in the script thread)
    and a Stop button: a click reruns the page, which ends this run; finished predictions stay
    cached, so running again resumes."""
    box = st.empty()
    with box.container():
        st.button("Stop", key=f"stop_{label}", help="Stops the run; what is done stays cached")
        bar = st.progress(0.0, text=label)

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{label}: {done:,} of {total:,}")

    try:
        return fn(*args, progress=progress, **kwargs)
    except ExplorerError as e:  # no image folder, unreadable files, ...: say so, keep the page
        st.error(str(e))
        return None
    finally:
        box.empty()


# ---------------------------------------------------------------------------- training


@st.cache_resource
def job_queue():
    """The process-wide training queue (its worker thread never calls Streamlit)."""
    from explorer.training.jobs import JobQueue

    return JobQueue()


def training_split(source: DatasetSource) -> dict:
    """What to train on: a COCO layout's train split validated on its val split (the sample's
    too), else the current dataset with a seeded 20% held out."""
    ann = Path(source.annotations)
    root = ann.parent.parent if ann.parent.name == "annotations" else None
    if root is not None:
        train = ann.parent / "instances_train2017.json"
        val = ann.parent / "instances_val2017.json"
        if (
            train.is_file()
            and val.is_file()
            and (root / "train2017").is_dir()
            and (root / "val2017").is_dir()
        ):
            return {
                "coco": str(train),
                "images": str(root / "train2017"),
                "val_coco": str(val),
                "val_images": str(root / "val2017"),
                "label": f"{root.name}: train2017, validated on val2017",
            }
    return {
        "coco": source.annotations,
        "images": source.images,
        "label": f"{source.label} with a seeded 20% of its images held out for validation",
    }


def crop_data_url(annotations: str, images: str, annotation_id: int, side: int = 48) -> str:
    """An object's crop as a small JPEG data URL (for ImageColumn cells), keyed by dataset and id."""
    return _crop_data_url(
        annotations, get_index(annotations).fingerprint, images, annotation_id, side
    )


@st.cache_data(show_spinner=False, max_entries=4096)
def _crop_data_url(
    annotations: str, fingerprint: str, images: str, annotation_id: int, side: int
) -> str:
    import base64

    from explorer.coco.images import load_rgb, resolve_image_path
    from explorer.inference.runner import crop_box

    index = get_index(annotations)
    a = int(np.flatnonzero(index.annotations["id"] == annotation_id)[0])
    r = int(index.annotations["image_row"][a])
    w, h = int(index.images["width"][r]), int(index.images["height"][r])
    try:
        rgb = load_rgb(resolve_image_path(images, str(index.images["file_name"][r])), (w, h))
    except ExplorerError:
        return ""
    x0, y0, x1, y1 = crop_box(tuple(index.annotations["bbox"][a]), w, h)
    data = render.encode_jpeg(render.letterbox(rgb[y0:y1, x0:x1], side, side), 80)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


@st.cache_data(show_spinner=False)
def label_space_tables():
    """The VOC -> COCO map and, per COCO category, how many ImageNet classes map to it."""
    import pandas as pd

    from explorer.coco.labels import VOC_COCO_IDS, VOC_COCO_NAMES, VOC_NAMES, imagenet_to_coco

    voc = pd.DataFrame(
        {
            "VOC label": list(range(1, 21)),
            "VOC name": VOC_NAMES[1:],
            "COCO id": VOC_COCO_IDS,
            "COCO name": VOC_COCO_NAMES,
        }
    )
    counts = pd.Series(list(imagenet_to_coco().values())).value_counts()
    imagenet = pd.DataFrame({"COCO name": counts.index, "ImageNet classes": counts.values})
    return voc, imagenet
