"""Which images match a filter: vectorised over the index's columns.

A :class:`ImageFilter` is plain data (what a page reads from widgets or the URL); the function
:func:`filter_images` turns it into image rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.coco.index import CocoIndex
from explorer.types import MatchMode


@dataclass(frozen=True)
class ImageFilter:
    """What images to keep. Empty fields do not filter.

    Attributes:
        categories: category ids.
        supercategories: supercategory names (each stands for all its categories).
        match: ``any`` (an image has at least one of the chosen groups) or ``all`` (every one).
        crowd: True = only images with a crowd annotation, False = only images without.
        instances: (min, max) number of annotations per image, inclusive.
        area: (min, max) object area: an image matches when one of its annotations (of the
            chosen categories, if any) has an area in [min, max).
        query: an image id, or part of a file name (case-insensitive).
        image_ids: only these images (ids; an id not in the dataset keeps nothing).
    """

    categories: tuple[int, ...] = ()
    supercategories: tuple[str, ...] = ()
    match: MatchMode = "any"
    crowd: bool | None = None
    instances: tuple[int, int] | None = None
    area: tuple[float, float] | None = None
    query: str = ""
    image_ids: tuple[int, ...] = ()


def category_groups(index: CocoIndex, flt: ImageFilter) -> list[np.ndarray]:
    """One array of category rows per chosen category or supercategory."""
    ids = index.category_ids
    groups = [np.flatnonzero(ids == c) for c in flt.categories]
    supers = np.array([c["supercategory"] for c in index.categories])
    groups += [np.flatnonzero(supers == s) for s in flt.supercategories]
    return [g for g in groups if len(g)] if groups else []


def filter_images(index: CocoIndex, flt: ImageFilter) -> np.ndarray:
    """Rows of the images that match ``flt``, in index order."""
    n = index.num_images
    anns = index.annotations
    keep = np.ones(n, bool)
    groups = category_groups(index, flt)
    if flt.categories or flt.supercategories:
        if not groups:
            return np.zeros(0, np.int64)
        hits = [
            np.bincount(anns["image_row"][np.isin(anns["category_row"], g)], minlength=n) > 0
            for g in groups
        ]
        keep &= np.logical_or.reduce(hits) if flt.match == "any" else np.logical_and.reduce(hits)
    if flt.crowd is not None:
        has_crowd = np.bincount(anns["image_row"][anns["iscrowd"]], minlength=n) > 0
        keep &= has_crowd if flt.crowd else ~has_crowd
    if flt.instances is not None:
        per_image = np.diff(index.images["ann_start"])
        keep &= (per_image >= flt.instances[0]) & (per_image <= flt.instances[1])
    if flt.area is not None:
        in_range = (anns["area"] >= flt.area[0]) & (anns["area"] < flt.area[1])
        if groups:
            in_range &= np.isin(anns["category_row"], np.concatenate(groups))
        keep &= np.bincount(anns["image_row"][in_range], minlength=n) > 0
    query = flt.query.strip()
    if query:
        by_id = index.images["id"] == int(query) if query.isdigit() else np.zeros(n, bool)
        names = np.char.lower(np.asarray(index.images["file_name"]))
        keep &= by_id | (np.char.find(names, query.lower()) >= 0)
    if flt.image_ids:
        keep &= np.isin(index.images["id"], np.asarray(flt.image_ids, np.int64))
    return np.flatnonzero(keep)
