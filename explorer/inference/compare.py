"""Classifier versus segmenter versus ground truth, per object and per image.

For each non-crowd annotation: the classifier's top-1 on its crop and the segmenter's majority
label inside its true mask, both mapped into the dataset's categories. An object is *comparable*
when both models can name its true category (their label spaces hold a counterpart); otherwise
it is counted as ``not_comparable``, never as wrong.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from explorer.coco import masks as coco_masks
from explorer.coco.index import CocoIndex
from explorer.coco.labels import dataset_label_map
from explorer.inference.products import predict
from explorer.inference.runner import items_for_crops, items_for_images
from explorer.models.weights import LoadedModel
from explorer.types import SIZE_RANGES, size_class

OUTCOMES = (
    "both_right",
    "only_classifier_right",
    "only_segmenter_right",
    "both_wrong",
    "not_comparable",
)
NO_COUNTERPART = -1
BACKGROUND = 0


def outcome(truth: int, cls: int, seg: int, comparable: bool) -> str:
    """Which of :data:`OUTCOMES` an object falls in."""
    if not comparable:
        return "not_comparable"
    return {
        (True, True): "both_right",
        (True, False): "only_classifier_right",
        (False, True): "only_segmenter_right",
        (False, False): "both_wrong",
    }[(cls == truth, seg == truth)]


def summarise(objects: list[dict]) -> dict:
    """Counts of each outcome; ``objects`` equals their sum."""
    counts = {k: 0 for k in OUTCOMES}
    for o in objects:
        counts[o["outcome"]] += 1
    return {"objects": len(objects), **counts}


def compare(
    classifier: LoadedModel,
    segmenter: LoadedModel,
    index: CocoIndex,
    images_dir: Path | None,
    image_rows=None,
    present_fraction: float = 0.02,
    top_k: int = 5,
    progress=None,
    cancel=None,
    workers: int = 2,
) -> dict:
    """The report: ``summary``, ``objects`` (one row per non-crowd annotation), ``images`` (one
    row per image), ``per_category``, ``by_size`` and ``confusion`` (classifier vs segmenter).

    Every prediction goes through the prediction cache: comparing again runs no model.
    """
    rows = np.arange(index.num_images) if image_rows is None else np.asarray(image_rows)
    names = {c["id"]: c["name"] for c in index.categories}
    cls_map = dataset_label_map(classifier.label_space, classifier.class_names, index.categories)
    seg_map = dataset_label_map(segmenter.label_space, segmenter.class_names, index.categories)
    cls_reach = {m for m in cls_map if m is not None}
    seg_reach = {m for m in seg_map if m is not None}
    steps = [0, 0, 0]

    def part(k: int):
        def report(done: int, total: int) -> None:
            steps[k] = done / max(total, 1)
            if progress:
                progress(round(sum(steps) * 1000), 3000)

        return report

    kw = {"workers": workers, "cancel": cancel}
    crops = {
        it.key: out
        for it, out, _ in predict(
            classifier, index, images_dir, items_for_crops(index, rows), progress=part(0), **kw
        )
    }
    whole = {
        it.image_row: out
        for it, out, _ in predict(
            classifier, index, images_dir, items_for_images(index, rows), progress=part(1), **kw
        )
    }
    objects, images = [], []
    anns = index.annotations
    for it, out, err in predict(
        segmenter, index, images_dir, items_for_images(index, rows), progress=part(2), **kw
    ):
        r = it.image_row
        image_id = int(index.images["id"][r])
        ann_rows = index.annotation_rows(r)
        labels = out[0] if out is not None else None
        inst, kept, _ = coco_masks.instance_masks(index, r, ann_rows[~anns["iscrowd"][ann_rows]])
        for m, a in zip(inst, kept.tolist(), strict=True):
            truth = int(anns["category_id"][a])
            key = f"ann:{int(anns['id'][a])}"
            c = crops.get(key)
            cls_cat = _mapped(cls_map, int(c[0][0])) if c is not None else NO_COUNTERPART
            seg_cat, cover = NO_COUNTERPART, 0.0
            if labels is not None and m.any():
                votes = np.bincount(labels[m.astype(bool)], minlength=len(seg_map))
                top = int(votes.argmax())
                cover = float(votes[top] / votes.sum())
                seg_cat = (
                    BACKGROUND
                    if (segmenter.task == "segment" and top == 0)
                    else _mapped(seg_map, top)
                )
            comparable = (
                truth in cls_reach and truth in seg_reach and c is not None and labels is not None
            )
            area = float(anns["area"][a])
            objects.append(
                {
                    "annotation_id": int(anns["id"][a]),
                    "image_id": image_id,
                    "true_category_id": truth,
                    "true_category": names[truth],
                    "area": area,
                    "size": size_class(area),
                    "classifier_label": classifier.class_names[int(c[0][0])]
                    if c is not None
                    else "",
                    "classifier_prob": float(c[1][0]) if c is not None else 0.0,
                    "classifier_category": _name(names, cls_cat),
                    "segmenter_label": segmenter.class_names[top]
                    if labels is not None and m.any()
                    else "",
                    "segmenter_coverage": round(cover, 4),
                    "segmenter_category": _name(names, seg_cat),
                    "outcome": outcome(truth, cls_cat, seg_cat, comparable),
                }
            )
        truth_set = sorted({names[int(x)] for x in anns["category_id"][ann_rows]})
        w = whole.get(r)
        cls_top = (
            [] if w is None else [_name(names, _mapped(cls_map, int(t))) for t in w[0][:top_k]]
        )
        present = []
        if labels is not None:
            frac = np.bincount(labels.ravel(), minlength=len(seg_map)) / labels.size
            present = sorted(
                {
                    _name(names, _mapped(seg_map, k))
                    for k in np.flatnonzero(frac >= present_fraction)
                    if k != 0 or segmenter.task != "segment"
                }
                - {"no counterpart"}
            )
        images.append(
            {
                "image_id": image_id,
                "true_categories": truth_set,
                "classifier_top": cls_top,
                "segmenter_present": present,
                "classifier_overlap": sorted(set(cls_top) & set(truth_set)),
                "segmenter_overlap": sorted(set(present) & set(truth_set)),
                "error": err or "",
            }
        )
    return {
        "summary": summarise(objects),
        "objects": objects,
        "images": images,
        "per_category": per_category(objects),
        "by_size": by_size(objects),
        "confusion": confusion(objects),
        "classifier": classifier.display_name,
        "segmenter": segmenter.display_name,
        "coverage": coverage(index, cls_reach, seg_reach),
    }


def _mapped(mapping: list, label: int) -> int:
    m = mapping[label] if 0 <= label < len(mapping) else None
    return NO_COUNTERPART if m is None else m


def _name(names: dict, cat: int) -> str:
    return "background" if cat == BACKGROUND else names.get(cat, "no counterpart")


def per_category(objects: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for o in objects:
        out.setdefault(o["true_category"], {k: 0 for k in OUTCOMES})[o["outcome"]] += 1
    return out


def by_size(objects: list[dict]) -> dict[str, dict]:
    """Accuracy of each model by COCO size class, over comparable objects."""
    out = {}
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


def confusion(objects: list[dict]) -> dict:
    """Counts of (classifier category, segmenter category) pairs over comparable objects."""
    sub = [o for o in objects if o["outcome"] != "not_comparable"]
    rows = sorted({o["classifier_category"] for o in sub})
    cols = sorted({o["segmenter_category"] for o in sub})
    m = np.zeros((len(rows), len(cols)), np.int64)
    for o in sub:
        m[rows.index(o["classifier_category"]), cols.index(o["segmenter_category"])] += 1
    return {"classifier": rows, "segmenter": cols, "counts": m.tolist()}


def coverage(index: CocoIndex, cls_reach: set, seg_reach: set) -> list[dict]:
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
