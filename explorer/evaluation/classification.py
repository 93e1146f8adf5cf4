"""A classification table scored against the dataset: top-1 (and top-5) accuracy, per-category
recall and precision, and a confusion matrix (truth rows, predicted columns, in the order of the
dataset's categories).

What is true depends on what the rows name:

* an annotation: its category. Crowd annotations are not scored (the reader skips them);
  accuracy is the share of rows whose predicted category is their annotation's, a category's
  accuracy (its recall) the share of its objects predicted as it.
* an image: the categories annotated in it (crowd regions included: a crowd of people is
  people). A prediction is right when its category is among them, so accuracy is the share of
  images whose predicted category is in the image. Each image adds one count to the confusion
  matrix per category in it, at (that category, the predicted one): row ``c`` sums to the
  scored images that hold ``c``, and its diagonal cell counts those predicted ``c``. Recall of
  ``c`` is that cell over the row; precision is that cell over the images predicted ``c``. An
  image without annotations has nothing to be right about: its row is skipped and counted.

Dataset objects (non-crowd annotations) or images with annotations that the table has no row
for are counted as ``not_predicted`` and left out of every number, never counted wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, TypedDict

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.predictions.classification import Classifications, Target

NO_CATEGORIES = "an image without annotations (nothing to be right about)"


class CategoryScore(TypedDict):
    """One category's numbers (None where undefined: no truth, or no prediction of it)."""

    category_id: int
    name: str
    truth: int  # objects of the category / scored images holding it
    predicted: int  # rows predicted as it
    correct: int  # rows predicted as it that are right (the confusion matrix's diagonal)
    accuracy: float | None  # its recall: the share of its truth predicted as it
    recall: float | None
    precision: float | None


class ClassificationEvaluation(TypedDict):
    """``eval-results --json`` of a classification table."""

    kind: str
    target: Target
    accuracy: float  # top-1; NaN when no row was scored
    top5: float | None  # None: the table has no top-5 in the dataset's categories
    scored: int
    not_predicted: int
    per_category: list[CategoryScore]
    category_ids: list[int]  # the confusion matrix's rows (truth) and columns (prediction)
    confusion: list[list[int]]
    skipped: int
    skipped_reasons: dict[str, int]


@dataclass(frozen=True, eq=False)
class _Scored:
    """What a target's truth makes of a table: the rows scored (``kept``), each one's top-1
    and top-5 hit, the confusion matrix and the truth the table has no row for."""

    kept: np.ndarray
    hit: np.ndarray
    top5: np.ndarray | None
    confusion: np.ndarray
    not_predicted: int
    skipped: dict[str, int]


class _Score(Protocol):
    def __call__(self, index: CocoIndex, table: Classifications) -> _Scored: ...


def _by_annotation(index: CocoIndex, table: Classifications) -> _Scored:
    k = len(index.categories)
    truth = index.annotations["category_row"][table.rows].astype(np.int64)
    pred = table.category_row
    top5 = None if table.top_rows is None else (table.top_rows == truth[:, None]).any(axis=1)
    objects = int((~index.annotations["iscrowd"]).sum())
    return _Scored(
        kept=np.ones(len(table), bool),
        hit=truth == pred,
        top5=top5,
        confusion=np.bincount(k * truth + pred, minlength=k * k).reshape(k, k),
        not_predicted=objects - len(table),
        skipped={},
    )


def _by_image(index: CocoIndex, table: Classifications) -> _Scored:
    k, anns = len(index.categories), index.annotations
    present = np.unique(anns["image_row"].astype(np.int64) * k + anns["category_row"])
    holds = np.zeros(index.num_images, bool)
    holds[present // k] = True
    kept = holds[table.rows]
    rows, pred = table.rows[kept], table.category_row[kept]

    def inside(images: np.ndarray, categories: np.ndarray) -> np.ndarray:
        keys = images * k + categories
        at = np.minimum(np.searchsorted(present, keys), len(present) - 1)
        return (categories >= 0) & (present[at] == keys) if len(present) else keys < 0

    top5: np.ndarray | None = None
    if table.top_rows is not None:
        top5 = np.any(inside(rows[:, None], table.top_rows[kept]), axis=1)
    table_row = np.full(index.num_images, -1, np.int64)
    table_row[rows] = np.arange(len(rows))
    pairs = present[table_row[present // k] >= 0]
    predicted = pred[table_row[pairs // k]]
    confusion = np.bincount((pairs % k) * k + predicted, minlength=k * k).reshape(k, k)
    dropped = int((~kept).sum())
    return _Scored(
        kept=kept,
        hit=inside(rows, pred),
        top5=top5,
        confusion=confusion,
        not_predicted=int(holds.sum()) - len(rows),
        skipped={NO_CATEGORIES: dropped} if dropped else {},
    )


@dataclass(frozen=True)
class Truth:
    """What is true of a table's rows, by what they name: how they are scored, and the rule in
    words."""

    score: _Score
    rule: str


TRUTHS: MappingProxyType[Target, Truth] = MappingProxyType(
    {
        "annotation": Truth(_by_annotation, "right: the predicted category is the object's"),
        "image": Truth(
            _by_image, "right: the predicted category is among the image's annotated categories"
        ),
    }
)


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(n / d) if d else None for n, d in zip(num.tolist(), den.tolist(), strict=True)]


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else float("nan")


def evaluate_classifications(index: CocoIndex, table: Classifications) -> ClassificationEvaluation:
    """Score ``table`` against ``index`` as the module says."""
    scored = TRUTHS[table.target].score(index, table)
    conf = scored.confusion
    truth, correct = conf.sum(axis=1), np.diag(conf)
    predicted = np.bincount(table.category_row[scored.kept], minlength=len(index.categories))
    recall, precision = _ratio(correct, truth), _ratio(correct, predicted)
    per_category: list[CategoryScore] = [
        {
            "category_id": int(c["id"]),
            "name": str(c["name"]),
            "truth": int(truth[i]),
            "predicted": int(predicted[i]),
            "correct": int(correct[i]),
            "accuracy": recall[i],
            "recall": recall[i],
            "precision": precision[i],
        }
        for i, c in enumerate(index.categories)
    ]
    skipped = {**table.skipped, **scored.skipped}
    return {
        "kind": "classification table",
        "target": table.target,
        "accuracy": _mean(scored.hit),
        "top5": None if scored.top5 is None else _mean(scored.top5),
        "scored": int(scored.kept.sum()),
        "not_predicted": scored.not_predicted,
        "per_category": per_category,
        "category_ids": [int(c["id"]) for c in index.categories],
        "confusion": conf.tolist(),
        "skipped": sum(skipped.values()),
        "skipped_reasons": skipped,
    }


def _share(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def classifications_text(evaluation: ClassificationEvaluation, seconds: float) -> str:
    """What ``eval-results`` prints for a classification table: its counts, accuracy, then a
    row per category that has truth or predictions."""
    e = evaluation
    reasons = ", ".join(f"{n:,} {why}" for why, n in sorted(e["skipped_reasons"].items()))
    head = (
        f"classification table (a row per {e['target']}): {e['scored']:,} rows scored, "
        f"{e['not_predicted']:,} not predicted (no row: left out), "
        + (f"{e['skipped']:,} rows skipped ({reasons})" if e["skipped"] else "none skipped")
        + f" · {seconds:.2f} s"
    )
    top5 = "no top-5 in the dataset's categories" if e["top5"] is None else f"{e['top5']:.4f}"
    rule = TRUTHS[e["target"]].rule
    table = [
        f"per category (accuracy = recall; {rule})",
        f"{'id':>5}  {'category':<20} {'truth':>7} {'predicted':>9} {'correct':>7} "
        f"{'recall':>6} {'precision':>9}",
        *(
            f"{r['category_id']:>5}  {r['name'][:20]:<20} {r['truth']:>7,} {r['predicted']:>9,} "
            f"{r['correct']:>7,} {_share(r['recall']):>6} {_share(r['precision']):>9}"
            for r in e["per_category"]
            if r["truth"] or r["predicted"]
        ),
    ]
    scores = f"top-1 accuracy {e['accuracy']:.4f}   top-5 {top5}"
    return "\n".join([head, scores, "", *table])
