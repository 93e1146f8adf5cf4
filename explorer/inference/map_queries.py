"""What the Map asks of an :class:`~explorer.inference.embeddings.ObjectMap`: the rows of given
annotation ids, an object and its nearest neighbours, tables of objects, mistake scores per row.

Columnar throughout (numpy arrays, one DataFrame per answer): a map may hold most of a million
objects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from explorer.inference.embeddings import ObjectMap

NEIGHBOURS = 12  # "more like this": the object's nearest neighbours shown


def map_rows_of(m: ObjectMap, annotation_ids) -> np.ndarray:
    """Map rows of these annotation ids (ids not on the map left out), in the given order."""
    ids = np.asarray(annotation_ids, np.int64)
    order = np.argsort(m.annotation_id, kind="stable")
    at = np.searchsorted(m.annotation_id, ids, sorter=order)
    at = np.minimum(at, max(len(order) - 1, 0))
    rows = order[at] if len(order) else np.zeros(0, np.int64)
    return rows[m.annotation_id[rows] == ids] if len(rows) else rows


def mistake_scores(m: ObjectMap, mistakes: pd.DataFrame | None) -> np.ndarray:
    """Per map row, the highest score of a mistake found on that object (0 where none)."""
    out = np.zeros(len(m), np.float64)
    if mistakes is None or not len(mistakes):
        return out
    best = mistakes.groupby("annotation_id")["score"].max()
    rows = map_rows_of(m, best.index.to_numpy())
    on_map = np.isin(best.index.to_numpy(), m.annotation_id)
    out[rows] = best.to_numpy()[on_map]
    return out


def objects_table(m: ObjectMap, rows: np.ndarray, names: dict[int, str]) -> pd.DataFrame:
    """One line per map row: annotation id, image id, category name, area."""
    import pandas as pd

    return pd.DataFrame(
        {
            "annotation_id": m.annotation_id[rows],
            "image_id": m.image_id[rows],
            "category": [names.get(int(c), "?") for c in m.category_id[rows]],
            "area": np.round(m.area[rows], 0),
        }
    )


def neighbour_table(
    m: ObjectMap, annotation_id: int, names: dict[int, str], k: int = NEIGHBOURS
) -> pd.DataFrame:
    """The object itself, then its ``k`` nearest neighbours in feature space, nearest first:
    ``rank`` (0 for the object), ``similarity`` (cosine of the unit feature vectors, unrounded)
    and ``distance`` (between the unit vectors, ``sqrt(2 - 2 cos)``: 0 the same, 1.41 unrelated,
    2 opposite). A well-trained classifier puts an object's kind within a few hundredths of it
    (cosines of 0.9998 and 0.998 both read "1.000" at three decimals): the distance keeps them
    apart (:func:`distance_text`).

    Raises:
        ExplorerError: the object is not on the map.
    """
    near = m.neighbours(annotation_id, k)
    rows = map_rows_of(m, np.concatenate([[annotation_id], near]))
    table = objects_table(m, rows, names)
    table["rank"] = np.arange(len(rows))
    table["similarity"] = _cosines(m, rows[0], rows)
    table["distance"] = np.sqrt(2.0 - 2.0 * table["similarity"].to_numpy())
    return table


def _cosines(m: ObjectMap, row: int, rows: np.ndarray) -> np.ndarray:
    """Cosine of map row ``row``'s vector with those of ``rows``, in float64, within [-1, 1]."""
    vectors = m.vectors[rows].astype(np.float64)
    return np.clip(vectors @ m.vectors[row].astype(np.float64), -1.0, 1.0)


def median_distance(m: ObjectMap, annotation_id: int) -> float:
    """The median distance (as :func:`neighbour_table`'s) from the object to every other object
    of the map: the scale its neighbours' distances read against (NaN when it is alone)."""
    row = map_rows_of(m, [annotation_id])
    if not len(row) or len(m) < 2:
        return float("nan")
    cos = np.delete(_cosines(m, int(row[0]), np.arange(len(m))), int(row[0]))
    return float(np.median(np.sqrt(2.0 - 2.0 * cos)))


def distance_text(distance: float) -> str:
    """A neighbour's distance as the Map shows it: three significant digits (0.0152, 0.213),
    enough to tell a trained classifier's near neighbours apart."""
    return f"{distance:.3g}"


def near_ids(m: ObjectMap, annotation_id: int | None, k: int = NEIGHBOURS) -> np.ndarray:
    """The object and its ``k`` neighbours (nothing when none is chosen or it is not on the
    map): what the chart highlights."""
    if annotation_id is None or not np.isin(annotation_id, m.annotation_id):
        return np.zeros(0, np.int64)
    return np.concatenate([[int(annotation_id)], m.neighbours(int(annotation_id), k)])
