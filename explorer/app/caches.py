"""Cached getters: what pages ask for again on every rerun, computed once.

Heavy objects (the index, models, the job queue) go through ``st.cache_resource`` keyed by
strings; derived data (filtered rows, overlays, thumbnails, crops) through ``st.cache_data``
keyed by ids and parameters, never by arrays or modules (hashing those on every rerun costs more
than the work). Derived data is keyed by the annotation file's fingerprint too: a changed file is
a new key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from explorer.coco import CocoIndex, fingerprint, open_index
from explorer.coco.dataset import Dataset
from explorer.coco.filters import ImageFilter, filter_images
from explorer.coco.images import crop_box, load_rgb, resolve_image_path
from explorer.errors import ExplorerError
from explorer.types import ResultKind
from explorer.viz import overlays


@st.cache_resource(show_spinner="Opening the annotation file…", max_entries=4)
def _index(annotations: str, images: str, file_fingerprint: str) -> CocoIndex:
    return open_index(annotations, images=images or None)


def get_index(annotations: str, images: str = "") -> CocoIndex:
    """The index of an annotation file, one per process (re-read when the file changes). With
    the image folder, image sizes the file leaves out are read from the images."""
    try:
        fp = fingerprint(Path(annotations))
    except OSError as e:
        raise ExplorerError(f"{annotations}: cannot read ({e.strerror})") from None
    return _index(annotations, images, fp)


def get_dataset(annotations: str, images: str = "") -> Dataset:
    """:func:`get_index`'s index with its image folder (none when ``images`` is empty)."""
    return Dataset(get_index(annotations, images), Path(images) if images else None)


def filtered_image_rows(annotations: str, flt: ImageFilter | None) -> np.ndarray:
    """The image rows a filter keeps (every image without a filter)."""
    if flt is None:
        return np.arange(get_index(annotations).num_images)
    return _filtered_image_rows(annotations, get_index(annotations).fingerprint, flt)


@st.cache_data(show_spinner=False, max_entries=64)
def _filtered_image_rows(annotations: str, fingerprint: str, flt: ImageFilter) -> np.ndarray:
    return filter_images(get_index(annotations), flt)


def distributions(annotations: str, flt: ImageFilter | None):
    """The Distributions page's statistics for the images a filter keeps (all without one),
    computed once per dataset and filter: a rerun (sort, log scale) only redraws."""
    return _distributions(annotations, get_index(annotations).fingerprint, flt)


@st.cache_resource(show_spinner=False, max_entries=8)  # read-only arrays: shared, not copied
def _distributions(annotations: str, fingerprint: str, flt: ImageFilter | None):
    from explorer.coco import stats

    rows = None if flt is None else filtered_image_rows(annotations, flt)
    return stats.distributions(get_index(annotations), rows)


def health_findings(annotations: str, images: str) -> list:
    """The dataset's health findings, with image files missing from the image folder (as
    ``stats --images`` reports them); re-checked every minute, as files may come."""
    return _health_findings(annotations, get_index(annotations, images).fingerprint, images)


@st.cache_data(show_spinner=False, max_entries=8, ttl=60)
def _health_findings(annotations: str, fingerprint: str, images: str) -> list:
    from explorer.coco import stats

    dataset = get_dataset(annotations, images)
    return stats.summary(dataset)["health"]


def overlay_jpeg(
    annotations: str, images: str, image_id: int, opts: overlays.OverlayOptions
) -> tuple[bytes, list[str]]:
    """An image with its annotations drawn, as JPEG bytes, and notes on what could not be shown."""
    return _overlay_jpeg(
        annotations, get_index(annotations, images).fingerprint, images, image_id, opts
    )


@st.cache_data(show_spinner=False, max_entries=256)
def _overlay_jpeg(
    annotations: str, fingerprint: str, images: str, image_id: int, opts: overlays.OverlayOptions
) -> tuple[bytes, list[str]]:
    dataset = get_dataset(annotations, images)
    rgb, notes = overlays.compose_overlay(dataset, dataset.index.image_row(image_id), opts)
    return overlays.encode_jpeg(rgb), notes


def thumbnail_jpeg(annotations: str, images: str, image_id: int) -> bytes:
    return _thumbnail_jpeg(
        annotations, get_index(annotations, images).fingerprint, images, image_id
    )


def thumbnail_url(annotations: str, images: str, image_id: int) -> str:
    """An image's thumbnail as a JPEG data URL. It travels inside the page's own message:
    served as 24 separate media files instead, a slow machine showed the grid as grey
    placeholders for seconds after the page had run (each file one more request)."""
    jpeg = thumbnail_jpeg(annotations, images, image_id)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


@st.cache_data(show_spinner=False, max_entries=4096)
def _thumbnail_jpeg(annotations: str, fingerprint: str, images: str, image_id: int) -> bytes:
    dataset = get_dataset(annotations, images)
    return overlays.thumbnail_jpeg(dataset, dataset.index.image_row(image_id))


def crop_data_url(annotations: str, images: str, annotation_id: int, side: int = 48) -> str:
    """An object's crop as a small JPEG data URL (for ImageColumn cells)."""
    fp = get_index(annotations, images).fingerprint
    return _crop_data_url(annotations, fp, images, annotation_id, side)


@st.cache_data(show_spinner=False, max_entries=4096)
def _crop_data_url(
    annotations: str, fingerprint: str, images: str, annotation_id: int, side: int
) -> str:
    index = get_index(annotations, images)
    a = int(np.flatnonzero(index.annotations["id"] == annotation_id)[0])
    r = int(index.annotations["image_row"][a])
    w, h = int(index.images["width"][r]), int(index.images["height"][r])
    try:
        rgb = load_rgb(resolve_image_path(images, str(index.images["file_name"][r])), (w, h))
    except ExplorerError:
        return ""
    x0, y0, x1, y1 = crop_box(tuple(index.annotations["bbox"][a]), w, h)
    data = overlays.encode_jpeg(overlays.letterbox(rgb[y0:y1, x0:x1], side, side), 80)
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


def weights_stamp(weights: str) -> str:
    """Changes when a weights file is rewritten (a run's best.pt after each better epoch)."""
    from explorer.models.weights import WeightsFile, file_key, resolve_weights_path, weights_choice

    if not isinstance(weights_choice(weights), WeightsFile):
        return ""
    try:
        return file_key(resolve_weights_path(weights))
    except (ExplorerError, OSError):
        return ""


@dataclass(frozen=True)
class ModelChoice:
    """A model as a page asks for it, all strings (Streamlit keys its cache by the fields).

    Attributes:
        name: the registry's model name.
        weights: as a user gives them, see ``weights_choice``.
        device: a device already chosen (``choose_device``), not "auto".
        encoder: a segmenter's encoder ("" = the model's default).
        annotations: the annotation file whose classes an untrained dataset-class model takes
            ("" = none).
    """

    name: str
    weights: str
    device: str
    encoder: str = ""
    annotations: str = ""


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_model(choice: ModelChoice, stamp: str):
    """A model, once per (name, weights, device, encoder, weights stamp) per process, shared by
    all sessions (``stamp``: see :func:`weights_stamp`)."""
    from explorer.models import load_model as load
    from explorer.models import weights_choice

    categories = get_index(choice.annotations).categories if choice.annotations else None
    return load(
        choice.name,
        weights_choice(choice.weights),
        choice.device,
        encoder=choice.encoder or None,
        dataset_categories=categories,
    )


@st.cache_resource(show_spinner=False, max_entries=8)
def architecture_rows(name: str, encoder: str, height: int, width: int, softmax: bool) -> list:
    """The layer table of a registry architecture (random weights: the table needs none)."""
    from explorer.models import anatomy

    module = anatomy.architecture(name, encoder or None)
    return anatomy.layer_table(module, height, width, softmax=softmax)


@st.cache_resource
def job_queue():
    """The process-wide training queue (its worker thread never calls Streamlit)."""
    from explorer.training.jobs import JobQueue

    return JobQueue()


@dataclass(frozen=True)
class ScoredFile:
    """A predictions file scored as one kind against a dataset, all strings (the caches of the
    Evaluate page are keyed by it): a rewritten file, either one, is a new key.

    Attributes:
        annotations, images: the dataset's files (as :func:`get_index` takes them).
        dataset_fingerprint: the annotation file's fingerprint.
        path: the results file; stamp: its fingerprint (real path, size, mtime).
        kind: what its records are scored as (an iou type).
    """

    annotations: str
    images: str
    dataset_fingerprint: str
    path: str
    stamp: str
    kind: ResultKind


def scored_file(annotations: str, images: str, path: str, kind: ResultKind) -> ScoredFile:
    """The key of a predictions file scored as ``kind`` on a dataset, as the files are now.

    Raises:
        PredictionsError: the results file cannot be read (gone since it was opened).
    """
    from explorer.errors import PredictionsError

    try:
        stamp = fingerprint(Path(path))
    except OSError as e:
        raise PredictionsError(f"{path}: cannot read ({e.strerror})") from None
    index = get_index(annotations, images)
    return ScoredFile(annotations, images, index.fingerprint, path, stamp, kind)


@st.cache_resource(show_spinner=False, max_entries=8)  # read-only columns: shared, not copied
def detections(key: ScoredFile):
    """The file's records of ``key.kind``, checked against the dataset (see ``read_results``)."""
    from explorer.predictions.results import read_results

    return read_results(key.path, get_index(key.annotations, key.images), key.kind)


@st.cache_resource(show_spinner=False, max_entries=8)
def evaluation(key: ScoredFile):
    """COCO's evaluation of the file (COCO's default parameters for its kind)."""
    from explorer.evaluation.cocoeval import evaluate
    from explorer.evaluation.params import EvalParams

    index = get_index(key.annotations, key.images)
    return evaluate(index, detections(key), EvalParams.for_iou_type(key.kind))


@st.cache_resource(show_spinner=False, max_entries=8)
def error_analysis(key: ScoredFile):
    """TIDE's error causes of the file's detections and their AP cost."""
    from explorer.evaluation.errors import analyse_errors

    index = get_index(key.annotations, key.images)
    return analyse_errors(evaluation(key), index, detections(key))


@st.cache_resource(show_spinner=False, max_entries=16)  # read-only columns: shared, not copied
def outcomes(key: ScoredFile, min_score: float):
    """What each detection and object of the file came to at ``min_score`` (IoU 0.5), and each
    image's errors (:func:`explorer.evaluation.image_outcomes.outcomes_at`)."""
    from explorer.evaluation.image_outcomes import outcomes_at

    return outcomes_at(evaluation(key), min_score)


def image_matches(key: ScoredFile, min_score: float, image_id: int, causes: bool = False):
    """One image's kept detections and missed objects at ``min_score``; ``causes``: with each
    false positive's cause (the file's error analysis, computed once)."""
    from explorer.evaluation.image_outcomes import image_matches as matches

    index = get_index(key.annotations, key.images)
    analysis = error_analysis(key) if causes else None
    return matches(outcomes(key, min_score), index, detections(key), image_id, analysis)


def _prediction_layer(key: ScoredFile, min_score: float, image_id: int, tags: bool):
    matches = image_matches(key, min_score, image_id)
    index = get_index(key.annotations, key.images)
    return overlays.PredictionLayer(matches, detections(key), index, tags)


@st.cache_data(show_spinner=False, max_entries=256)
def prediction_overlay_jpeg(
    key: ScoredFile, min_score: float, image_id: int, opts: overlays.OverlayOptions
) -> tuple[bytes, list[str]]:
    """:func:`overlay_jpeg` with the file's detections at ``min_score`` drawn over it, and the
    annotations in the colours of their outcomes."""
    dataset = get_dataset(key.annotations, key.images)
    row = dataset.index.image_row(image_id)
    layer = _prediction_layer(key, min_score, image_id, tags=True)
    rgb, notes = overlays.compose_overlay(
        dataset, row, opts, overlays.object_colours(layer.matches)
    )
    size = (int(dataset.index.images["width"][row]), int(dataset.index.images["height"][row]))
    return overlays.encode_jpeg(overlays.draw_predictions(rgb, layer, size)), notes


def prediction_thumbnail_url(key: ScoredFile, min_score: float, image_id: int) -> str:
    """:func:`prediction_thumbnail_jpeg` as a JPEG data URL (see :func:`thumbnail_url`)."""
    jpeg = prediction_thumbnail_jpeg(key, min_score, image_id)
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


@st.cache_data(show_spinner=False, max_entries=4096)
def prediction_thumbnail_jpeg(key: ScoredFile, min_score: float, image_id: int) -> bytes:
    """:func:`thumbnail_jpeg` with the file's detections at ``min_score`` drawn over it."""
    dataset = get_dataset(key.annotations, key.images)
    layer = _prediction_layer(key, min_score, image_id, tags=False)
    return overlays.prediction_thumbnail_jpeg(dataset, dataset.index.image_row(image_id), layer)


@st.cache_data(show_spinner=False, max_entries=16)
def detector_suspects(key: ScoredFile, min_score: float):
    """The suspected mistakes the file's confident errors point to (a DataFrame of
    ``mistakes.COLUMNS``), see :mod:`explorer.inference.detector_mistakes`."""
    from explorer.inference.detector_mistakes import detector_suspects as suspects
    from explorer.inference.mistakes import to_frame

    index = get_index(key.annotations, key.images)
    found = suspects(evaluation(key), error_analysis(key), index, detections(key), min_score)
    return to_frame(found)
