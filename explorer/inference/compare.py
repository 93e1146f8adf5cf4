"""Classifier versus segmenter versus ground truth, per object and per image.

For each non-crowd annotation: the classifier's top-1 on its crop and the segmenter's majority
label inside its true mask, both mapped into the dataset's categories. An object is *comparable*
when both models can name its true category (their label spaces hold a counterpart); otherwise
it is counted as ``not_comparable``, never as wrong.

:func:`compare` returns a :class:`Report`; ``Report.to_json()`` is what ``compare --out`` writes.
Rows and tallies are JSON-shaped ``TypedDict`` values, so the report needs no conversion.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any, Literal, TypedDict, get_args

import numpy as np

from explorer.coco import masks as coco_masks
from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.inference.cache import predict
from explorer.inference.options import DEFAULT_OPTIONS, RunOptions
from explorer.inference.outputs import Record
from explorer.inference.pair import ModelPair
from explorer.inference.runner import (
    items_for_crops,
    items_for_images,
    split_progress,
)
from explorer.models.tasks import task_kind
from explorer.models.weights import LoadedModel
from explorer.types import SIZE_RANGES, SizeClass, size_class

Outcome = Literal[
    "both_right",
    "only_classifier_right",
    "only_segmenter_right",
    "both_wrong",
    "not_comparable",
]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
NO_COUNTERPART = -1  # a category id no dataset has: the model's label has no dataset category
BACKGROUND = 0


class ObjectRow(TypedDict):
    """One non-crowd annotation and what each model made of it."""

    annotation_id: int
    image_id: int
    true_category_id: int
    true_category: str
    area: float
    size: SizeClass
    classifier_label: str  # "" when the crop could not be read
    classifier_prob: float
    classifier_category: str  # a dataset category, "background" or "no counterpart"
    segmenter_label: str  # "" when the image could not be read or the mask is empty
    segmenter_coverage: float  # the majority label's share of the mask's pixels
    segmenter_category: str
    outcome: Outcome


class ImageRow(TypedDict):
    """One image: its true categories and the categories each model sees in it."""

    image_id: int
    true_categories: list[str]
    classifier_top: list[str]  # the whole image's top-k labels, as dataset categories
    segmenter_present: list[str]  # categories covering at least ``present_fraction`` of it
    classifier_overlap: list[str]
    segmenter_overlap: list[str]
    error: str


class Summary(TypedDict):
    """Counts of each outcome; ``objects`` equals their sum."""

    objects: int
    both_right: int
    only_classifier_right: int
    only_segmenter_right: int
    both_wrong: int
    not_comparable: int


class SizeAccuracy(TypedDict):
    objects: int  # comparable objects of the size class
    classifier_acc: float | None  # None when there are none
    segmenter_acc: float | None


class ModelConfusion(TypedDict):
    """``counts[i][j]``: objects the classifier calls ``classifier[i]``, the segmenter
    ``segmenter[j]``."""

    classifier: list[str]
    segmenter: list[str]
    counts: list[list[int]]


class Coverage(TypedDict):
    category: str
    id: int
    classifier: bool  # the classifier has a label for it
    segmenter: bool


@dataclass(frozen=True)
class Report:
    """What :func:`compare` finds; :meth:`to_json` is the ``compare --out`` file."""

    summary: Summary
    objects: list[ObjectRow]  # one per non-crowd annotation
    images: list[ImageRow]
    per_category: dict[str, dict[Outcome, int]]  # true category -> outcome counts
    by_size: dict[SizeClass, SizeAccuracy]
    confusion: ModelConfusion  # classifier vs segmenter, comparable objects
    classifier: str  # the models' display names
    segmenter: str
    coverage: list[Coverage]  # which categories each model can name

    def to_json(self) -> dict[str, Any]:
        """The report as ``compare --out`` writes it: the fields, in order, as keys."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def outcome(truth: int, cls: int, seg: int, comparable: bool) -> Outcome:
    """Which of :data:`OUTCOMES` an object falls in."""
    if not comparable:
        return "not_comparable"
    by_rightness: dict[tuple[bool, bool], Outcome] = {
        (True, True): "both_right",
        (True, False): "only_classifier_right",
        (False, True): "only_segmenter_right",
        (False, False): "both_wrong",
    }
    return by_rightness[(cls == truth, seg == truth)]


def summarise(objects: list[ObjectRow]) -> Summary:
    """Counts of each outcome; ``objects`` equals their sum."""
    counts = Counter(o["outcome"] for o in objects)
    return {
        "objects": len(objects),
        "both_right": counts["both_right"],
        "only_classifier_right": counts["only_classifier_right"],
        "only_segmenter_right": counts["only_segmenter_right"],
        "both_wrong": counts["both_wrong"],
        "not_comparable": counts["not_comparable"],
    }


@dataclass(frozen=True)
class CompareSettings:
    """What the per-image rows report: a category is "present" in the segmentation when it
    covers at least ``present_fraction`` of the image; the classifier's ``top_k`` labels."""

    present_fraction: float = 0.02
    top_k: int = 5


@dataclass(frozen=True)
class _Labels:
    """The two models, the dataset, how the models' labels meet its categories, and what the
    per-image rows report."""

    classifier: LoadedModel
    segmenter: LoadedModel
    index: CocoIndex
    settings: CompareSettings
    names: dict[int, str]  # dataset category id -> name
    cls_map: list[int | None]  # model label -> dataset category id (None: no counterpart)
    seg_map: list[int | None]
    cls_reach: frozenset[int]  # the categories each model can name
    seg_reach: frozenset[int]

    @classmethod
    def of(cls, models: ModelPair, index: CocoIndex, settings: CompareSettings) -> _Labels:
        cats = index.categories
        cls_map = models.classifier.category_of_label(cats)
        seg_map = models.segmenter.category_of_label(cats)
        return cls(
            models.classifier,
            models.segmenter,
            index,
            settings,
            {c["id"]: c["name"] for c in cats},
            cls_map,
            seg_map,
            frozenset(m for m in cls_map if m is not None),
            frozenset(m for m in seg_map if m is not None),
        )


def compare(
    models: ModelPair,
    dataset: Dataset,
    image_rows=None,
    settings: CompareSettings = CompareSettings(),  # noqa: B008 - frozen: safe to share
    options: RunOptions = DEFAULT_OPTIONS,
) -> Report:
    """The :class:`Report` on ``image_rows`` (default: every image).

    Every prediction goes through the prediction cache: comparing again runs no model.
    """
    index = dataset.index
    classifier, segmenter = models.classifier, models.segmenter
    rows = np.arange(index.num_images) if image_rows is None else np.asarray(image_rows)
    lab = _Labels.of(models, index, settings)
    part = split_progress(options.progress, 3)
    crop_items, image_items = items_for_crops(index, rows), items_for_images(index, rows)
    crops = {
        it.annotation_id: out
        for it, out, _ in predict(classifier, dataset, crop_items, options.reporting(part(0)))
    }
    whole = {
        it.image_row: out
        for it, out, _ in predict(classifier, dataset, image_items, options.reporting(part(1)))
    }
    objects: list[ObjectRow] = []
    images: list[ImageRow] = []
    for it, out, err in predict(segmenter, dataset, image_items, options.reporting(part(2))):
        labels = out[0] if out is not None else None
        objects += _object_rows(lab, it.image_row, labels, crops)
        images.append(_image_row(lab, it.image_row, labels, whole.get(it.image_row), err))
    return Report(
        summary=summarise(objects),
        objects=objects,
        images=images,
        per_category=per_category(objects),
        by_size=by_size(objects),
        confusion=confusion(objects),
        classifier=classifier.display_name,
        segmenter=segmenter.display_name,
        coverage=coverage(index, lab.cls_reach, lab.seg_reach),
    )


def _object_rows(
    lab: _Labels,
    image_row: int,
    labels: np.ndarray | None,
    crops: dict[int | None, Record | None],
) -> list[ObjectRow]:
    """The rows of an image's non-crowd annotations (``labels``: its segmentation, if read)."""
    index = lab.index
    anns = index.annotations
    ann_rows = index.annotation_rows(image_row)
    # a box-only annotation (a detection export) is judged by the segmenter inside its box
    inst, kept, _ = coco_masks.instance_masks(
        index, image_row, ann_rows[~anns["iscrowd"][ann_rows]], boxes=True
    )
    return [
        _object_row(lab, a, mask, labels, crops.get(int(anns["id"][a])))
        for mask, a in zip(inst, kept.tolist(), strict=True)
    ]


def _object_row(
    lab: _Labels, ann: int, mask: np.ndarray, labels: np.ndarray | None, crop: Record | None
) -> ObjectRow:
    anns = lab.index.annotations
    image_id = int(lab.index.images["id"][anns["image_row"][ann]])
    truth = int(anns["category_id"][ann])
    cls_cat = _mapped(lab.cls_map, int(crop[0][0])) if crop is not None else NO_COUNTERPART
    seg_label, seg_cat, cover = _majority(lab, labels, mask)
    comparable = (
        truth in lab.cls_reach
        and truth in lab.seg_reach
        and crop is not None
        and labels is not None
    )
    area = float(anns["area"][ann])
    return {
        "annotation_id": int(anns["id"][ann]),
        "image_id": image_id,
        "true_category_id": truth,
        "true_category": lab.names[truth],
        "area": area,
        "size": size_class(area),
        "classifier_label": lab.classifier.class_names[int(crop[0][0])] if crop is not None else "",
        "classifier_prob": float(crop[1][0]) if crop is not None else 0.0,
        "classifier_category": _name(lab.names, cls_cat),
        "segmenter_label": seg_label,
        "segmenter_coverage": round(cover, 4),
        "segmenter_category": _name(lab.names, seg_cat),
        "outcome": outcome(truth, cls_cat, seg_cat, comparable),
    }


def _majority(lab: _Labels, labels: np.ndarray | None, mask: np.ndarray) -> tuple[str, int, float]:
    """The segmenter's majority label inside a true mask: ``(label, its category, its share)``."""
    if labels is None or not mask.any():
        return "", NO_COUNTERPART, 0.0
    votes = np.bincount(labels[mask.astype(bool)], minlength=len(lab.seg_map))
    top = int(votes.argmax())
    # a segmenter's label 0 is background, which no dataset category is
    is_background = task_kind(lab.segmenter.task).background and top == 0
    cat = BACKGROUND if is_background else _mapped(lab.seg_map, top)
    return lab.segmenter.class_names[top], cat, float(votes[top] / votes.sum())


def _image_row(
    lab: _Labels,
    image_row: int,
    labels: np.ndarray | None,
    whole: Record | None,
    err: str | None,
) -> ImageRow:
    index, settings = lab.index, lab.settings
    cats = index.annotations["category_id"][index.annotation_rows(image_row)]
    truth = sorted({lab.names[int(x)] for x in cats})
    cls_top = (
        []
        if whole is None
        else [_name(lab.names, _mapped(lab.cls_map, int(t))) for t in whole[0][: settings.top_k]]
    )
    present = [] if labels is None else _present(lab, labels, settings.present_fraction)
    return {
        "image_id": int(index.images["id"][image_row]),
        "true_categories": truth,
        "classifier_top": cls_top,
        "segmenter_present": present,
        "classifier_overlap": sorted(set(cls_top) & set(truth)),
        "segmenter_overlap": sorted(set(present) & set(truth)),
        "error": err or "",
    }


def _present(lab: _Labels, labels: np.ndarray, fraction: float) -> list[str]:
    """Dataset categories covering at least ``fraction`` of an image (background left out)."""
    frac = np.bincount(labels.ravel(), minlength=len(lab.seg_map)) / labels.size
    found = {
        _name(lab.names, _mapped(lab.seg_map, int(k)))
        for k in np.flatnonzero(frac >= fraction)
        if k != 0 or not task_kind(lab.segmenter.task).background
    }
    return sorted(found - {"no counterpart"})


def _mapped(mapping: list, label: int) -> int:
    m = mapping[label] if 0 <= label < len(mapping) else None
    return NO_COUNTERPART if m is None else m


def _name(names: dict, cat: int) -> str:
    return "background" if cat == BACKGROUND else names.get(cat, "no counterpart")


def per_category(objects: list[ObjectRow]) -> dict[str, dict[Outcome, int]]:
    out: dict[str, dict[Outcome, int]] = {}
    for o in objects:
        out.setdefault(o["true_category"], {k: 0 for k in OUTCOMES})[o["outcome"]] += 1
    return out


def by_size(objects: list[ObjectRow]) -> dict[SizeClass, SizeAccuracy]:
    """Accuracy of each model by COCO size class, over comparable objects."""
    out: dict[SizeClass, SizeAccuracy] = {}
    for s in SIZE_RANGES:
        sub = [o for o in objects if o["size"] == s and o["outcome"] != "not_comparable"]
        n = len(sub)
        right_c = sum(o["outcome"] in ("both_right", "only_classifier_right") for o in sub)
        right_s = sum(o["outcome"] in ("both_right", "only_segmenter_right") for o in sub)
        out[s] = {
            "objects": n,
            "classifier_acc": right_c / n if n else None,
            "segmenter_acc": right_s / n if n else None,
        }
    return out


def confusion(objects: list[ObjectRow]) -> ModelConfusion:
    """Counts of (classifier category, segmenter category) pairs over comparable objects."""
    sub = [o for o in objects if o["outcome"] != "not_comparable"]
    rows = sorted({o["classifier_category"] for o in sub})
    cols = sorted({o["segmenter_category"] for o in sub})
    m = np.zeros((len(rows), len(cols)), np.int64)
    for o in sub:
        m[rows.index(o["classifier_category"]), cols.index(o["segmenter_category"])] += 1
    return {"classifier": rows, "segmenter": cols, "counts": m.tolist()}


def coverage(
    index: CocoIndex, cls_reach: frozenset[int], seg_reach: frozenset[int]
) -> list[Coverage]:
    """Which dataset categories each model can name (the label-space explainer)."""
    return [
        {
            "category": c["name"],
            "id": c["id"],
            "classifier": c["id"] in cls_reach,
            "segmenter": c["id"] in seg_reach,
        }
        for c in index.categories
    ]
