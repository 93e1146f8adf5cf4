"""A classifier's predictions as a table, and its scores against the true categories.

:func:`classification_table` predicts through the cache (:func:`explorer.inference.cache.predict`)
and reads the top-5 labels into rows; :func:`classification_scores` and
:func:`accuracy_per_category` score a table of crops. A label counts only through its dataset
category (:func:`explorer.coco.labels.dataset_label_map`); objects of a category the model cannot
name are ``not_comparable``, never wrong.
:func:`agreement` codes each object of an object map by the classifier's top-1 against its
annotated category (the Map colours by it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypedDict

import numpy as np

from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.inference.cache import predict
from explorer.inference.options import DEFAULT_OPTIONS, RunOptions
from explorer.inference.runner import Item, items_for_crops, items_for_images
from explorer.models.weights import LoadedModel
from explorer.types import Category

if TYPE_CHECKING:
    from explorer.inference.embeddings import ObjectMap

TABLE_TOP = 5  # top-k columns of a table


class ClassificationScores(TypedDict):
    """``evaluate --json`` of a classifier (with model, weights, untrained added by the CLI)."""

    top1: float  # NaN when no object is comparable
    top5: float
    objects: int  # comparable objects: their category has a counterpart among the model's labels
    not_comparable: int
    unreadable: int


@dataclass(frozen=True, eq=False)
class CategoryAccuracy:
    """Top-1 hits per dataset category over comparable crops, in the dataset's category order."""

    names: list[str]
    right: np.ndarray
    total: np.ndarray


def classification_table(
    model: LoadedModel,
    dataset: Dataset,
    crops: bool,
    image_rows=None,
    options: RunOptions = DEFAULT_OPTIONS,
):
    """A pandas DataFrame, one row per image (or per non-crowd annotation with ``crops``).

    Columns: image_id, [annotation_id, true_category_id, true_category], top1..top5 label and
    probability, label_index (top-1), mapped_category_id / mapped_category (the top-1 label in the
    dataset's categories; empty when there is no counterpart), model, weights, untrained, error.
    """
    import pandas as pd

    index = dataset.index
    rows = np.arange(index.num_images) if image_rows is None else np.asarray(image_rows)
    items = items_for_crops(index, rows) if crops else items_for_images(index, rows)
    mapping = model.category_of_label(index.categories)
    names = {c["id"]: c["name"] for c in index.categories}
    ann_row = _annotation_rows(index, rows) if crops else {}
    records = []
    for it, out, err in predict(model, dataset, items, options):
        rec: dict = {"image_id": it.image_id}
        if crops:
            rec.update(_truth_columns(index, names, it, ann_row))
        if out is not None:
            rec.update(_prediction_columns(model, mapping, names, out))
        rec.update(
            model=model.name,
            weights=model.weights_label,
            untrained=model.untrained,
            error=err or "",
        )
        records.append(rec)
    return pd.DataFrame.from_records(records)


def _annotation_rows(index: CocoIndex, rows) -> dict[int, int]:
    """Annotation id -> row, for the chosen images only (not a map of the whole dataset)."""
    return {
        int(index.annotations["id"][a]): int(a) for r in rows for a in index.annotation_rows(int(r))
    }


def _truth_columns(index: CocoIndex, names: dict, item: Item, ann_row: dict[int, int]) -> dict:
    assert item.annotation_id is not None  # a crop's item names its annotation
    cat = int(index.annotations["category_id"][ann_row[item.annotation_id]])
    return {
        "annotation_id": item.annotation_id,
        "true_category_id": cat,
        "true_category": names[cat],
    }


def _prediction_columns(model: LoadedModel, mapping: list, names: dict, out) -> dict:
    top, prob = out
    cols: dict = {}
    for k in range(TABLE_TOP):
        cols[f"top{k + 1}"] = model.class_names[top[k]] if k < len(top) else ""
        cols[f"top{k + 1}_prob"] = float(prob[k]) if k < len(prob) else 0.0
    mapped = mapping[int(top[0])]
    cols.update(
        label_index=int(top[0]),
        mapped_category_id=mapped if mapped is not None else -1,
        mapped_category=names.get(mapped, "") if mapped is not None else "",
    )
    return cols


def _nameable(mapping: list[int | None]) -> set[int]:
    """The dataset categories a model has a label for (from its label map)."""
    return {m for m in mapping if m is not None}


def _comparable(model: LoadedModel, table, categories: list[Category]):
    """``(label map, readable rows, readable rows of a category the model can name)``."""
    mapping = model.category_of_label(categories)
    ok = table[table["error"] == ""]
    return mapping, ok, ok[ok["true_category_id"].isin(_nameable(mapping))]


def classification_scores(
    model: LoadedModel, table, categories: list[Category]
) -> ClassificationScores:
    """Top-1 / top-5 accuracy of a crops table against the true categories, over the objects
    whose category the model can name (the rest are ``not_comparable``, never counted wrong)."""
    mapping, ok, comparable = _comparable(model, table, categories)
    label_of = {n: i for i, n in enumerate(model.class_names)}
    top1 = (comparable["mapped_category_id"] == comparable["true_category_id"]).sum()
    top5 = 0
    for _, r in comparable.iterrows():
        hits = {mapping[label_of[r[f"top{k}"]]] for k in range(1, 6) if r[f"top{k}"] in label_of}
        top5 += r["true_category_id"] in hits
    n = len(comparable)
    return {
        "top1": float(top1 / n) if n else float("nan"),
        "top5": float(top5 / n) if n else float("nan"),
        "objects": int(n),
        "not_comparable": int(len(ok) - n),
        "unreadable": int(len(table) - len(ok)),
    }


def accuracy_per_category(
    model: LoadedModel, table, categories: list[Category]
) -> CategoryAccuracy:
    """Top-1 right / total per category of a crops table, over comparable objects."""
    _, _, comparable = _comparable(model, table, categories)
    truth, guess = comparable["true_category_id"], comparable["mapped_category_id"]
    cats = [c["id"] for c in categories]
    return CategoryAccuracy(
        names=[c["name"] for c in categories],
        right=np.array([((truth == c) & (guess == c)).sum() for c in cats]),
        total=np.array([(truth == c).sum() for c in cats]),
    )


Verdict = Literal["right", "wrong", "not comparable", "unreadable"]


def verdicts(model: LoadedModel, table, categories: list[Category]) -> list[Verdict]:
    """Per row of a crops table: top-1 right, wrong, not comparable (the model has no label for
    the true category) or unreadable (the image could not be read)."""
    reachable = _nameable(model.category_of_label(categories))
    out: list[Verdict] = []
    for truth, guess, error in zip(
        table["true_category_id"], table["mapped_category_id"], table["error"], strict=True
    ):
        if error:
            out.append("unreadable")
        elif truth not in reachable:
            out.append("not comparable")
        else:
            out.append("right" if guess == truth else "wrong")
    return out


AGREES, DISAGREES, NO_LABEL = 1, 0, -1  # the codes of :func:`agreement`


def agreement(
    model: LoadedModel, dataset: Dataset, m: ObjectMap, options: RunOptions = DEFAULT_OPTIONS
) -> np.ndarray:
    """Per map row: :data:`AGREES` when the classifier's top-1 on the crop is the annotated
    category, :data:`DISAGREES` when it is another, :data:`NO_LABEL` when the model has no label
    for the annotated category (or no answer). Predictions come through the cache."""
    index = dataset.index
    order = np.argsort(index.images["id"], kind="stable")
    ids = np.unique(m.image_id)
    rows = np.sort(order[np.searchsorted(index.images["id"], ids, sorter=order)])
    mapping = model.category_of_label(index.categories)
    nameable = _nameable(mapping)
    top1 = {
        it.annotation_id: mapping[int(out[0][0])]
        for it, out, _ in predict(model, dataset, items_for_crops(index, rows), options)
        if out is not None
    }
    codes = np.full(len(m), NO_LABEL, np.int64)
    for i, (a, c) in enumerate(zip(m.annotation_id.tolist(), m.category_id.tolist(), strict=True)):
        if a in top1 and c in nameable:
            codes[i] = AGREES if top1[a] == c else DISAGREES
    return codes
