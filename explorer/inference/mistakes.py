"""Annotation mistakes, found by two models that look differently at the same objects.

The classifier reads each object's crop; the segmenter labels every pixel of its image. Where
both doubt an annotation, it is probably wrong; where the segmenter finds a confident region
of a category that no annotation of it covers, and the classifier agrees on that region's crop,
an object is probably missing. Three kinds of rows (:data:`KINDS`):

* ``wrong_label`` — the models' joint belief ``q`` in the annotated category is low. ``q`` over
  the dataset's categories is the classifier's probability vector on the crop averaged with the
  segmenter's shares of the object's mask, the segmenter weighted by how much of the mask it
  calls foreground (a segmenter that sees only background there has no opinion).
  ``score = 1 - q[annotated]``; the suggestion is the other category with the highest ``q``.
* ``missing`` — a connected region the segmenter gives a category, not covered by any
  annotation of that category, at least ``min_area_fraction`` of the image. ``score`` is the
  mean of the segmenter's confidence in that category and the classifier's probability of it
  on the region's crop.
* ``bad_mask`` — the label is believed (``q[annotated] >= 0.5``), the segmenter found the
  category around the object (a region at least a quarter of the mask's size), but that region
  overlaps the annotation's mask poorly: ``score = 1 - IoU``.

Scores are calibrated against the models' measured quality (:mod:`explorer.models.quality`):
each model's evidence counts by its trust ``t = min(1, quality / threshold)`` (its training
run's val_acc / val_mIoU against the task's threshold; 1 when not measured, 0 untrained), the
rest of it says "no mistake". So ``wrong_label``'s ``q`` weights the classifier by ``t_c`` and
the segmenter by ``t_s * foreground``, and ``score = (1 - q[annotated]) * T``, ``T`` the weighted
trust ``(t_c + t_s * foreground) / (1 + foreground)`` of the models that spoke; ``missing``
averages ``t_s * confidence`` and ``t_c * probability``; ``bad_mask`` is ``t_s * (1 - IoU)``. A
weak model cannot yield a confident score (a segmenter at val mIoU 0.2 against 0.6 adds at most
a third), and models at or above their thresholds rank exactly as uncalibrated.

A model only counts for categories it can name (the label-space rules of
:mod:`explorer.inference.compare`); an object neither model can name is not judged. Every
prediction goes through the prediction cache: finding mistakes again runs no model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypedDict, cast, get_args

import numpy as np

from explorer.coco import masks as coco_masks
from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.errors import ExplorerError
from explorer.inference.cache import predict
from explorer.inference.options import DEFAULT_OPTIONS, RunOptions
from explorer.inference.outputs import LabelMapRecord, Record
from explorer.inference.pair import ModelPair
from explorer.inference.runner import (
    Item,
    items_for_crops,
    items_for_images,
    split_progress,
)
from explorer.models.tasks import task_kind
from explorer.models.weights import LoadedModel

Kind = Literal["wrong_label", "missing", "bad_mask"]
KINDS: tuple[Kind, ...] = get_args(Kind)
NONE = -1  # annotation_id / annotated_category_id of a missing object
MODELS = "models"  # the evidence of the classifier and segmenter pair


class Mistake(TypedDict):
    """One suspected mistake (a row of ``mistakes --out``)."""

    kind: Kind
    image_id: int
    annotation_id: int  # -1 for ``missing``
    category_id: int  # the suggestion: the right category (its own for ``bad_mask``)
    annotated_category_id: int  # what the file says (-1 for ``missing``)
    bbox: list[float]  # [x, y, w, h]: the annotation's, or the missing region's
    score: float  # 0..1, higher = more likely a mistake
    classifier_annotated: float  # the classifier's probability of the annotated category (NaN:
    classifier_suggested: float  # it cannot name it); the same of the suggestion
    segmenter_annotated: float  # share of the object's foreground pixels the segmenter gives
    segmenter_suggested: float  # the annotated / suggested category
    segmenter_foreground: float  # share of the object's mask the segmenter calls foreground
    mask_iou: float  # the segmenter's region versus the annotated mask (NaN: not measured)
    suggested_rle: str  # the segmenter's region as COCO compressed RLE counts ("" if none)
    evidence: str  # whose opinion this is: "models" (classifier + segmenter) or "detector NAME"
    detector_score: float  # the detection's score (NaN: not a detector's row)


@dataclass(frozen=True)
class Settings:
    """Thresholds: a row is written when its score reaches the kind's minimum."""

    min_wrong_label: float = 0.5
    min_bad_mask: float = 0.5
    min_missing: float = 0.3
    min_area_fraction: float = 0.002  # the smallest missing region, as a share of its image
    box_context: float = 0.5  # bad_mask looks this much of the box's size around it


@dataclass(frozen=True)
class Result:
    """What :func:`find_mistakes` found, ranked by score within each kind."""

    rows: list[Mistake]
    objects: int  # non-crowd annotations looked at
    judged: int  # of which a model could name the category
    unread: list[dict] = field(default_factory=list)  # {"image_id", "error"}: images not read
    classifier: str = ""
    segmenter: str = ""
    names: dict[int, str] = field(default_factory=dict)  # category id -> name

    def counts(self) -> dict[Kind, int]:
        return {k: sum(r["kind"] == k for r in self.rows) for k in KINDS}


@dataclass(frozen=True)
class _Space:
    """The dataset's categories as positions 0..C-1; ``C`` is background, ``C + 1`` a label
    with no dataset counterpart. ``*_lut`` map a model's labels to positions."""

    ids: np.ndarray  # position -> category id
    cls_lut: np.ndarray
    seg_lut: np.ndarray
    cls_reach: np.ndarray  # bool per position: the model can name it
    seg_reach: np.ndarray
    cls_trust: float = 1.0  # the share of each model's evidence that counts (its quality)
    seg_trust: float = 1.0

    @property
    def n(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, classifier: LoadedModel, segmenter: LoadedModel, index: CocoIndex) -> _Space:
        cats = index.categories
        ids = np.array([c["id"] for c in cats], np.int64)
        pos = {int(c): i for i, c in enumerate(ids)}
        n = len(ids)

        def lut(model: LoadedModel) -> np.ndarray:
            mapped = model.category_of_label(cats)
            out = np.array([n + 1 if m is None else pos[m] for m in mapped], np.int64)
            if task_kind(model.task).background and len(out):
                out[0] = n  # a segmenter's label 0 is background
            return out

        cls_lut, seg_lut = lut(classifier), lut(segmenter)
        reach = [np.isin(np.arange(n), t) for t in (cls_lut, seg_lut)]
        trust = (classifier.quality.trust, segmenter.quality.trust)
        return cls(ids, cls_lut, seg_lut, reach[0], reach[1], *trust)

    def probabilities(self, record: Record | None) -> np.ndarray | None:
        """A classifier record (its best labels) as probabilities per dataset position."""
        if record is None:
            return None
        labels, probs = record
        p = np.zeros(self.n + 2)
        np.add.at(p, self.cls_lut[np.asarray(labels, np.int64)], np.asarray(probs, float))
        return p[: self.n]


def find_mistakes(
    models: ModelPair,
    dataset: Dataset,
    image_rows=None,
    settings: Settings = Settings(),
    options: RunOptions = DEFAULT_OPTIONS,
) -> Result:
    """Suspected mistakes on ``image_rows`` (default: every image), ranked within each kind.

    Raises:
        ExplorerError: neither model can name any category (a model of the wrong task is
            refused by :class:`~explorer.inference.pair.ModelPair`).
    """
    index, classifier, segmenter = dataset.index, models.classifier, models.segmenter
    rows = np.arange(index.num_images) if image_rows is None else np.asarray(image_rows)
    space = _Space.of(classifier, segmenter, index)
    if not (space.cls_reach.any() or space.seg_reach.any()):
        raise ExplorerError("neither model can name any of the dataset's categories")
    part = split_progress(options.progress, 3)
    crop_items = items_for_crops(index, rows)
    crops = {
        it.annotation_id: out
        for it, out, _ in predict(classifier, dataset, crop_items, options.reporting(part(0)))
    }
    found: list[Mistake] = []
    regions: list[_Region] = []
    unread: list[dict] = []
    image_items = items_for_images(index, rows)
    for it, out, err in predict(segmenter, dataset, image_items, options.reporting(part(1))):
        if out is None:
            unread.append({"image_id": it.image_id, "error": err or "not read"})
            continue
        image = _SegmentedImage.of(space, index, it.image_row, out)
        found += [m for a in image.objects() for m in _judge(space, image, a, crops, settings)]
        regions += image.uncovered_regions(settings.min_area_fraction)
    missing = _missing(classifier, space, dataset, regions, options.reporting(part(2)))
    found += [m for m in missing if m["score"] >= settings.min_missing]
    judged = sum(
        bool(space.cls_reach[p] or space.seg_reach[p])
        for p in _positions(space, index.annotations["category_id"][_kept_rows(index, rows)])
    )
    return Result(
        rows=sorted(found, key=lambda m: (KINDS.index(m["kind"]), -m["score"])),
        objects=len(crop_items),
        judged=int(judged),
        unread=unread,
        classifier=classifier.display_name,
        segmenter=segmenter.display_name,
        names={int(c["id"]): str(c["name"]) for c in index.categories},
    )


def _kept_rows(index: CocoIndex, image_rows: np.ndarray) -> np.ndarray:
    """The non-crowd annotation rows of the images."""
    per_image = [index.annotation_rows(int(r)) for r in image_rows]
    rows = np.concatenate(per_image) if per_image else np.zeros(0, np.int64)
    return rows[~index.annotations["iscrowd"][rows].astype(bool)]


def _positions(space: _Space, category_ids) -> np.ndarray:
    sorter = np.argsort(space.ids)
    at = np.searchsorted(space.ids, category_ids, sorter=sorter)
    return sorter[np.clip(at, 0, len(sorter) - 1)]


@dataclass
class _SegmentedImage:
    """One image: its segmentation as dataset positions, and its annotations' masks."""

    space: _Space
    index: CocoIndex
    image_row: int
    labels: np.ndarray  # H x W dataset positions (C background, C+1 no counterpart)
    confidence: dict[int, float]  # position -> the segmenter's mean winning probability
    ann_rows: np.ndarray
    masks: np.ndarray  # (n, H, W) uint8, one per row of ann_rows
    positions: np.ndarray  # each annotation's category position

    @classmethod
    def of(
        cls, space: _Space, index: CocoIndex, image_row: int, out: LabelMapRecord
    ) -> _SegmentedImage:
        labels = space.seg_lut[out[0]]
        confidence: dict[int, float] = {}
        for label, score in out[1].items():
            p = int(space.seg_lut[label]) if 0 <= label < len(space.seg_lut) else space.n + 1
            confidence[p] = max(confidence.get(p, 0.0), float(score))
        masks, rows, _ = coco_masks.instance_masks(index, image_row, boxes=True)
        if len(rows) and masks.shape[1:] != labels.shape:  # sizes disagree: judge nothing here
            rows, masks = rows[:0], masks[:0]
        cats = index.annotations["category_id"][rows]
        return cls(
            space, index, image_row, labels, confidence, rows, masks, _positions(space, cats)
        )

    @property
    def image_id(self) -> int:
        return int(self.index.images["id"][self.image_row])

    def objects(self) -> list[int]:
        """Indices (into ``ann_rows``) of the non-crowd annotations."""
        crowd = self.index.annotations["iscrowd"][self.ann_rows].astype(bool)
        return [k for k in range(len(self.ann_rows)) if not crowd[k]]

    def shares(self, k: int) -> tuple[np.ndarray, float]:
        """The segmenter's shares of annotation ``k``'s foreground pixels per position, and the
        share of its mask that is foreground (anything but background)."""
        votes = np.bincount(self.labels[self.masks[k].astype(bool)], minlength=self.space.n + 2)
        fg = votes.sum() - votes[self.space.n]
        return votes[: self.space.n] / max(fg, 1), float(fg / max(votes.sum(), 1))

    def region_iou(self, k: int, context: float) -> tuple[float, np.ndarray]:
        """IoU of annotation ``k``'s mask with the segmenter's pixels of its category around it
        (its box grown by ``context``; pixels of other annotations of the category left out)."""
        pos = self.positions[k]
        window = np.zeros(self.labels.shape, bool)
        h, w = self.labels.shape
        x0, y0, x1, y1 = _grown(self.index.annotations["bbox"][self.ann_rows[k]], context, w, h)
        window[y0:y1, x0:x1] = True
        others = [j for j in range(len(self.ann_rows)) if j != k and self.positions[j] == pos]
        if others:
            window &= ~self.masks[others].any(0).astype(bool)
        predicted = window & (self.labels == pos)
        mask = self.masks[k].astype(bool)
        union = (predicted | mask).sum()
        return float((predicted & mask).sum() / union) if union else 0.0, predicted

    def uncovered_regions(self, min_area_fraction: float) -> list[_Region]:
        """Connected regions of one category that no annotation of it covers."""
        from scipy import ndimage

        out: list[_Region] = []
        min_area = max(16, min_area_fraction * self.labels.size)
        annotated = self.masks.any(0) if len(self.masks) else np.zeros(self.labels.shape, bool)
        for pos in np.unique(self.labels):
            if pos >= self.space.n or not self.space.seg_reach[pos]:
                continue
            covered = np.zeros(self.labels.shape, bool)
            if len(self.masks) and (self.positions == pos).any():
                covered = self.masks[self.positions == pos].any(0).astype(bool)
            near = ndimage.binary_dilation(covered, iterations=3)
            free = (self.labels == pos) & ~ndimage.binary_dilation(covered, iterations=2)
            parts, n = ndimage.label(ndimage.binary_opening(free, np.ones((3, 3), bool)))
            areas = np.bincount(parts.ravel(), minlength=n + 1)
            # a region mostly inside another category's annotation is that object, labelled
            # otherwise (a wrong_label question), not a missing one
            inside = np.bincount(parts.ravel(), weights=annotated.ravel(), minlength=n + 1)
            for j, sl in enumerate(ndimage.find_objects(parts), start=1):
                if areas[j] < min_area or inside[j] > 0.5 * areas[j]:
                    continue
                if _attached(parts, j, sl, near) <= MAX_ATTACHED:
                    region = parts[sl] == j
                    out.append(_Region.of(self, int(pos), sl, region, int(areas[j])))
        return out


BELIEVED = 0.5  # the models' joint belief in a label above which its mask is questioned
MIN_FOUND = 0.25  # bad_mask: the segmenter's region must be at least this share of the mask
MAX_ATTACHED = 0.2  # a region whose rim lies more on an annotation of its category is its fringe


def _attached(parts: np.ndarray, j: int, sl, near: np.ndarray) -> float:
    """The share of region ``j``'s rim (2 px around it) ``near`` an annotation of its category:
    a sliver along an annotated object (the segmenter drew it larger) runs along it."""
    from scipy import ndimage

    h, w = parts.shape
    ys, xs = sl
    y0, y1, x0, x1 = (
        max(0, ys.start - 4),
        min(h, ys.stop + 4),
        max(0, xs.start - 4),
        min(w, xs.stop + 4),
    )
    region = parts[y0:y1, x0:x1] == j
    rim = ndimage.binary_dilation(region, iterations=2) & ~region
    return float(near[y0:y1, x0:x1][rim].sum() / max(rim.sum(), 1))


def _grown(box, context: float, width: int, height: int) -> tuple[int, int, int, int]:
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, math.floor(x - context * w)), max(0, math.floor(y - context * h))
    x1, y1 = min(width, math.ceil(x + w + context * w)), min(height, math.ceil(y + h + context * h))
    return x0, y0, max(x1, x0), max(y1, y0)


def _judge(
    space: _Space,
    image: _SegmentedImage,
    k: int,
    crops: dict[int | None, Record | None],
    settings: Settings,
) -> list[Mistake]:
    """Annotation ``k`` of the image: a ``wrong_label`` row, a ``bad_mask`` row (two separate
    questions: a believed label whose mask is off), both or none."""
    anns = image.index.annotations
    a = int(image.ann_rows[k])
    c = int(image.positions[k])
    p = space.probabilities(crops.get(int(anns["id"][a]))) if space.cls_reach[c] else None
    s, fg = image.shares(k) if space.seg_reach[c] else (None, 0.0)
    # the classifier counts once, the segmenter by how much of the mask it calls foreground;
    # each by its trust (calibration: the untrusted rest of its evidence says "no mistake")
    spoke = [
        (w, t, v)
        for w, t, v in ((1.0, space.cls_trust, p), (fg, space.seg_trust, s))
        if v is not None and w > 0
    ]
    if not spoke:
        return []
    said = sum(w for w, _, _ in spoke)
    trusted = sum(w * t for w, t, _ in spoke)
    weights = [w * t for w, t, _ in spoke] if trusted > 0 else [w for w, _, _ in spoke]
    q = np.sum([w * v for w, (_, _, v) in zip(weights, spoke, strict=True)], axis=0) / sum(weights)
    doubt = float((1 - q[c]) * trusted / said)
    reach = (space.cls_reach if p is not None else False) | (
        space.seg_reach if s is not None else False
    )
    others = np.where(reach & (np.arange(space.n) != c), q, -1.0)
    best = int(others.argmax())
    row = _row(image, a, space, c, _Evidence(p, s, fg))
    out: list[Mistake] = []
    if doubt >= settings.min_wrong_label and others[best] >= 0:
        out.append(_amended(row, kind="wrong_label", score=doubt, **_suggested(space, best, p, s)))
    if q[c] >= BELIEVED and s is not None:
        out += _bad_mask(image, k, row, settings)
    return out


def _bad_mask(image: _SegmentedImage, k: int, row: Mistake, settings: Settings) -> list[Mistake]:
    if coco_masks.box_only(image.index, image.ann_rows[k : k + 1])[0]:
        return []
    iou, predicted = image.region_iou(k, settings.box_context)
    score = image.space.seg_trust * (1 - iou)  # calibrated by the segmenter's quality
    # a segmenter that found (almost) none of the category here missed the object: no opinion
    if predicted.sum() < MIN_FOUND * image.masks[k].sum() or score < settings.min_bad_mask:
        return []
    return [
        _amended(row, kind="bad_mask", score=score, mask_iou=iou, suggested_rle=_rle(predicted))
    ]


def _amended(row: Mistake, **changes: object) -> Mistake:
    """The row with some of its fields changed (the names are Mistake's own)."""
    unknown = set(changes) - set(Mistake.__annotations__)
    assert not unknown, unknown
    return cast(Mistake, {**row, **changes})


class _Evidence(NamedTuple):
    """What the models said of one object: the classifier's probabilities and the segmenter's
    shares per dataset position (None: that model cannot name the category), and how much of
    the mask the segmenter calls foreground."""

    classifier: np.ndarray | None
    segmenter: np.ndarray | None
    foreground: float


def _row(image, a: int, space: _Space, c: int, evidence: _Evidence) -> Mistake:
    p, s, fg = evidence
    anns = image.index.annotations
    return {
        "kind": "wrong_label",
        "image_id": image.image_id,
        "annotation_id": int(anns["id"][a]),
        "category_id": int(space.ids[c]),
        "annotated_category_id": int(space.ids[c]),
        "bbox": [float(v) for v in anns["bbox"][a]],
        "score": 0.0,
        "classifier_annotated": math.nan if p is None else float(p[c]),
        "classifier_suggested": math.nan if p is None else float(p[c]),
        "segmenter_annotated": math.nan if s is None else float(s[c]),
        "segmenter_suggested": math.nan if s is None else float(s[c]),
        "segmenter_foreground": fg,
        "mask_iou": math.nan,
        "suggested_rle": "",
        "evidence": MODELS,
        "detector_score": math.nan,
    }


def _suggested(space: _Space, best: int, p, s) -> dict:
    return {
        "category_id": int(space.ids[best]),
        "classifier_suggested": math.nan if p is None else float(p[best]),
        "segmenter_suggested": math.nan if s is None else float(s[best]),
    }


def _rle(mask: np.ndarray) -> str:
    from pycocotools import mask as mask_utils

    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


@dataclass(frozen=True)
class _Region:
    """A region of one category that no annotation covers: a candidate missing object."""

    image_row: int
    image_id: int
    position: int
    bbox: tuple[float, float, float, float]
    area: int
    confidence: float  # the segmenter's mean winning probability of the category in the image
    rle: str

    @classmethod
    def of(cls, image: _SegmentedImage, pos: int, sl, region: np.ndarray, area: int) -> _Region:
        full = np.zeros(image.labels.shape, bool)
        full[sl] = region
        y, x = sl
        box = (float(x.start), float(y.start), float(x.stop - x.start), float(y.stop - y.start))
        conf = image.confidence.get(pos, 0.0)
        return cls(image.image_row, image.image_id, pos, box, area, conf, _rle(full))


def _missing(
    classifier: LoadedModel,
    space: _Space,
    dataset: Dataset,
    regions: list[_Region],
    options: RunOptions,
) -> list[Mistake]:
    """``missing`` rows: each region, with the classifier's opinion of its crop (the caller
    keeps those whose score reaches its minimum)."""
    items = [Item(r.image_row, r.image_id, r.bbox) for r in regions]
    seen = {it.key: out for it, out, _ in predict(classifier, dataset, items, options)}
    out: list[Mistake] = []
    for r, it in zip(regions, items, strict=True):
        p = space.probabilities(seen.get(it.key)) if space.cls_reach[r.position] else None
        # each model's confidence counted by its trust (calibration, see the module's doc)
        evidence = [space.seg_trust * r.confidence]
        evidence += [] if p is None else [space.cls_trust * float(p[r.position])]
        score = float(np.mean(evidence))
        out.append(
            {
                "kind": "missing",
                "image_id": r.image_id,
                "annotation_id": NONE,
                "category_id": int(space.ids[r.position]),
                "annotated_category_id": NONE,
                "bbox": list(r.bbox),
                "score": score,
                "classifier_annotated": math.nan,
                "classifier_suggested": math.nan if p is None else float(p[r.position]),
                "segmenter_annotated": math.nan,
                "segmenter_suggested": r.confidence,
                "segmenter_foreground": 1.0,
                "mask_iou": math.nan,
                "suggested_rle": r.rle,
                "evidence": MODELS,
                "detector_score": math.nan,
            }
        )
    return out


COLUMNS = tuple(Mistake.__annotations__)


def to_frame(rows: list[Mistake]):
    """The rows as a pandas DataFrame with every column of :class:`Mistake` (also when empty)."""
    import pandas as pd

    return pd.DataFrame(rows, columns=list(COLUMNS))
