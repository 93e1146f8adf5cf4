"""A classification table (CSV or Parquet) as predictions: ``predict``'s for a classifier, or a
user's own.

A row names an annotation (an ``annotation_id`` column: one object, as ``predict --crops``
writes) or else an image (an ``image_id`` column), and the category predicted for it:

* a user's table: ``category_id``, a category id of the dataset, and optionally ``score``;
* ``predict``'s table: ``mapped_category_id`` (its top-1 label in the dataset's categories, -1
  where the label has none), ``top1_prob``, the labels ``top1``..``top5`` and ``error`` (not
  empty: the image could not be read). ``category_id`` wins when a table has both.

Top-5 is read when the table has ``top1``..``top5`` and every label in them names a category of
the dataset (compared as :func:`explorer.coco.labels.name_key` compares names: a classifier
trained on the dataset's own categories); labels of another space (ImageNet's) give no top-5.

A row that cannot be scored is skipped and counted by reason, never fatal (see ``REASONS``);
a table without the columns it needs is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np

from explorer.coco._records import lookup
from explorer.coco.index import CocoIndex
from explorer.coco.labels import name_key
from explorer.errors import PredictionsError

Target = Literal["annotation", "image"]
"""What a table's rows name: one annotation (object) each, or one image each."""


@dataclass(frozen=True)
class _Names:
    """What a table's id column names: its target, the index table of its ids, whether a
    crowd among them is left out."""

    target: Target
    table: Literal["annotations", "images"]
    crowds_skipped: bool


ID_COLUMNS: MappingProxyType[str, _Names] = MappingProxyType(
    {
        "annotation_id": _Names("annotation", "annotations", crowds_skipped=True),
        "image_id": _Names("image", "images", crowds_skipped=False),
    }
)  # the first a table has decides what its rows name
CATEGORY_COLUMNS = ("category_id", "mapped_category_id")  # the first a table has is read
SCORE_COLUMNS = ("score", "top1_prob")
TOP_COLUMNS = tuple(f"top{k}" for k in range(1, 6))
ERROR_COLUMN = "error"
NO_COUNTERPART = -1  # predict's mapped_category_id where its label has no dataset category

# Why a row is skipped, each a short phrase; a row gets the first that applies.
UNREADABLE_IMAGE = "its image could not be read (error column)"
BAD_ID = "id missing or not an integer"
UNKNOWN_ID = "id not in the dataset"
CROWD = "a crowd annotation (not scored)"
BAD_CATEGORY = "category missing or not an integer"
NO_CATEGORY = "predicted label has no category in the dataset"
UNKNOWN_CATEGORY = "category_id not in the dataset"
DUPLICATE = "a second row for the same id (the first kept)"
REASONS = (
    "",
    UNREADABLE_IMAGE,
    BAD_ID,
    UNKNOWN_ID,
    CROWD,
    BAD_CATEGORY,
    NO_CATEGORY,
    UNKNOWN_CATEGORY,
    DUPLICATE,
)
_CODE = {reason: code for code, reason in enumerate(REASONS)}


@dataclass(frozen=True, eq=False)
class Classifications:
    """A table's scorable rows, columnar, in table order.

    Attributes:
        path: the table.
        target: what each row names.
        ids: int64, the annotation or image id of each row.
        rows: int64, its row in the index's annotations or images.
        category_row: int64, the predicted category's row in ``index.categories``.
        score: float64 (NaN where not a number), or None when the table has no score.
        top_rows: ``(n, 5)`` int64 category rows of the top-5 labels (-1 where empty), or
            None when the table's labels are not the dataset's categories.
        skipped: why rows were skipped -> how many.
    """

    path: Path
    target: Target
    ids: np.ndarray
    rows: np.ndarray
    category_row: np.ndarray
    score: np.ndarray | None
    top_rows: np.ndarray | None
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.rows)


def read_classifications(path: str | Path, index: CocoIndex) -> Classifications:
    """Read a ``.csv`` or ``.parquet`` classification table against ``index``.

    Raises:
        PredictionsError: the file is missing, unreadable, not a table, or has no id column
            or no category column.
    """
    path = Path(path)
    frame = _read_frame(path)
    id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    category_column = next((c for c in CATEGORY_COLUMNS if c in frame.columns), None)
    if id_column is None or category_column is None:
        needs = "an annotation_id or image_id column" if id_column is None else "a category_id"
        has = ", ".join(map(str, frame.columns)) or "none"
        raise PredictionsError(
            f"{path}: a classification table needs {needs} column (predict's table has "
            f"mapped_category_id); its columns: {has}"
        )
    return _classifications(path, frame, index, (id_column, category_column))


def _read_frame(path: Path):
    """The table's known columns as a pandas DataFrame (empty labels read as empty strings)."""
    import pandas as pd

    wanted = {*ID_COLUMNS, *CATEGORY_COLUMNS, *SCORE_COLUMNS, *TOP_COLUMNS, ERROR_COLUMN}
    readers: dict[str, Callable] = {
        ".csv": lambda: pd.read_csv(
            path, usecols=lambda c: c in wanted, keep_default_na=False, na_values=[""]
        ),
        ".parquet": lambda: _read_parquet(path, wanted),
    }
    read = readers.get(path.suffix.lower())
    if read is None:
        raise PredictionsError(f"{path}: a classification table is a .csv or .parquet file")
    if not path.is_file():
        raise PredictionsError(f"{path}: no such file")
    try:
        return read()
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise PredictionsError(f"{path}: not a readable table ({_first_line(e)})") from None


def _read_parquet(path: Path, wanted: set[str]):
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    return pq.read_table(path, columns=[c for c in schema.names if c in wanted]).to_pandas()


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _integers(column) -> tuple[np.ndarray, np.ndarray]:
    """``(int64 values, ok)``: ok where the value is an integer (a whole float counts)."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(column.dtype) and not column.isna().any():
        values = column.to_numpy(np.int64)
        return values, np.ones(len(values), bool)
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    ok = np.isfinite(numbers) & (numbers == np.floor(numbers)) & (np.abs(numbers) < 2.0**63)
    return np.where(ok, numbers, 0).astype(np.int64), ok


def _texts(column) -> np.ndarray:
    """A column as Python strings (missing: empty)."""
    return column.astype(object).where(column.notna(), "").astype(str).to_numpy(object)


def _classifications(
    path: Path, frame, index: CocoIndex, columns: tuple[str, str]
) -> Classifications:
    id_column, category_column = columns
    names = ID_COLUMNS[id_column]
    ids, id_ok = _integers(frame[id_column])
    categories, category_ok = _integers(frame[category_column])
    rows = lookup(getattr(index, names.table)["id"], ids)
    category_row = lookup(index.category_ids, categories)
    reason = np.zeros(len(frame), np.uint8)
    failures = (
        (UNREADABLE_IMAGE, _failed(frame)),
        (BAD_ID, ~id_ok),
        (UNKNOWN_ID, rows < 0),
        (CROWD, _crowd(index, names, rows)),
        (BAD_CATEGORY, ~category_ok),
        (NO_CATEGORY, (categories == NO_COUNTERPART) & (category_column != "category_id")),
        (UNKNOWN_CATEGORY, category_row < 0),
    )
    for why, failed in failures:
        reason[(reason == 0) & failed] = _CODE[why]
    kept = np.flatnonzero(reason == 0)
    _, first = np.unique(ids[kept], return_index=True)
    reason[np.setdiff1d(kept, kept[first])] = _CODE[DUPLICATE]
    kept = np.flatnonzero(reason == 0)
    counts = np.bincount(reason, minlength=len(REASONS))
    return Classifications(
        path=path,
        target=names.target,
        ids=ids[kept],
        rows=rows[kept],
        category_row=category_row[kept],
        score=_score(frame)[kept] if _has_score(frame) else None,
        top_rows=_top_rows(frame, index, kept),
        skipped={REASONS[c]: int(counts[c]) for c in np.flatnonzero(counts[1:]) + 1},
    )


def _crowd(index: CocoIndex, names: _Names, rows: np.ndarray) -> np.ndarray:
    if not names.crowds_skipped:
        return np.zeros(len(rows), bool)
    return np.isin(rows, np.flatnonzero(index.annotations["iscrowd"]))


def _failed(frame) -> np.ndarray:
    if ERROR_COLUMN not in frame.columns:
        return np.zeros(len(frame), bool)
    return _texts(frame[ERROR_COLUMN]) != ""


def _has_score(frame) -> bool:
    return any(c in frame.columns for c in SCORE_COLUMNS)


def _score(frame) -> np.ndarray:
    import pandas as pd

    column = next(c for c in SCORE_COLUMNS if c in frame.columns)
    return pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64, na_value=np.nan)


def _top_rows(frame, index: CocoIndex, kept: np.ndarray) -> np.ndarray | None:
    """The kept rows' top-5 labels as category rows, or None (no top-5 columns, or a label
    that names no category of the dataset)."""
    if not all(c in frame.columns for c in TOP_COLUMNS):
        return None
    labels = np.stack([_texts(frame[c])[kept] for c in TOP_COLUMNS], axis=1)
    by_key: dict[str, int] = {}
    for row, c in enumerate(index.categories):
        by_key.setdefault(name_key(c["name"]), row)
    names, inverse = np.unique(labels, return_inverse=True)
    found = np.array([by_key.get(name_key(n), -1) if n else -1 for n in names.tolist()])
    if any(n and f < 0 for n, f in zip(names.tolist(), found.tolist(), strict=True)):
        return None
    return found[inverse.reshape(labels.shape)].astype(np.int64)
