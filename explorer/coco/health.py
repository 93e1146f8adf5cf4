"""Findings about a dataset's quality, computed on the columnar tables.

A :class:`Finding` is JSON-shaped (``stats --json`` prints it as it is). Errors are found while
parsing (see ``_records.Problems``); the rest here, those about one annotation kind's kept
records called as that kind's findings (see ``explorer.coco.instances``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypedDict

import numpy as np

from explorer.types import Category

MAX_EXAMPLES = 10

Severity = Literal["error", "warning", "info"]
"""error: records were skipped; warning: kept but suspicious; info: worth knowing."""


class Finding(TypedDict):
    check: str  # a stable name, e.g. "degenerate_box"
    severity: Severity
    count: int
    message: str
    # a few of the records concerned: ids, or an id with the reason (one shape per check,
    # declared where it is made: _records.BadRecord, _build.ImageSize,
    # segmentations.SkippedAnnotation and RleSizeMismatch)
    examples: list


def _finding(
    check: str,
    severity: Severity,
    mask_or_ids: np.ndarray,
    message: str,
    ids: np.ndarray | None = None,
) -> Finding | None:
    if mask_or_ids.dtype == bool:
        assert ids is not None, "a mask selects from the ids it is given"
        hits = ids[mask_or_ids]
    else:
        hits = mask_or_ids
    if len(hits) == 0:
        return None
    return {
        "check": check,
        "severity": severity,
        "count": int(len(hits)),
        "message": message,
        "examples": [h.item() if hasattr(h, "item") else h for h in hits[:MAX_EXAMPLES]],
    }


def table_findings(
    images: dict, anns: dict, categories: list[Category], box_only: np.ndarray
) -> list[Finding]:
    """Warnings and info about records that were kept: boxes, areas, ids, unused categories,
    and the annotations that are boxes only (``box_only``: no segmentation to draw a mask from).
    """
    uniq, counts = np.unique(anns["id"], return_counts=True)
    cat_used = np.bincount(anns["category_row"], minlength=len(categories)) > 0
    n_per_image = np.diff(images["ann_start"])
    found = [
        _finding(
            "duplicate_annotation_id",
            "warning",
            uniq[counts > 1],
            "annotation ids used more than once (pycocotools keeps only the last)",
        ),
        *_geometry_findings(images, anns),
        _finding(
            "boxes_only",
            "info",
            box_only,
            "annotations that are boxes only: no segmentation, or an image of unknown size "
            "(counted everywhere; no instance mask)",
            anns["id"],
        ),
        _finding(
            "empty_image", "info", n_per_image == 0, "images without any annotation", images["id"]
        ),
        _finding(
            "unused_category",
            "info",
            ~cat_used,
            _unused_message(categories, ~cat_used),
            np.array([c["id"] for c in categories], dtype=np.int64),
        ),
    ]
    return [f for f in found if f]


def _unused_message(categories: list[Category], unused: np.ndarray) -> str:
    """The finding's message names the categories (examples hold their ids, as JSON did)."""
    names = [str(c["name"]) for c, u in zip(categories, unused.tolist(), strict=True) if u]
    more = f" and {len(names) - MAX_EXAMPLES} more" if len(names) > MAX_EXAMPLES else ""
    return f"categories that no annotation uses: {', '.join(names[:MAX_EXAMPLES])}{more}"


def _geometry_findings(images: dict, anns: dict) -> list[Finding | None]:
    """Boxes and areas that cannot be right (None where a check found nothing)."""
    x, y, w, h = anns["bbox"].T if len(anns["bbox"]) else (np.zeros(0),) * 4
    img_w = images["width"][anns["image_row"]].astype(np.float64)
    img_h = images["height"][anns["image_row"]].astype(np.float64)
    known = img_w > 0  # an image of unknown size (0) has no outside
    crowd = anns["iscrowd"]
    ids = anns["id"]
    return [
        _finding(
            "degenerate_box",
            "warning",
            (w <= 0) | (h <= 0),
            "annotations whose box has zero or negative width or height",
            ids,
        ),
        _finding(
            "box_outside_image",
            "warning",
            known & ((x < -1) | (y < -1) | (x + w > img_w + 1) | (y + h > img_h + 1)),
            "annotations whose box reaches more than 1 px outside the image",
            ids,
        ),
        _finding(
            "area_exceeds_box",
            "warning",
            ~crowd & (anns["area"] > w * h * 1.01 + 1),
            "non-crowd annotations whose area is larger than their box",
            ids,
        ),
        _finding(
            "crowd_area_zero",
            "warning",
            crowd & (anns["area"] <= 0),
            "crowd annotations with zero area",
            ids,
        ),
        _finding(
            "zero_area", "warning", ~crowd & (anns["area"] <= 0), "annotations with zero area", ids
        ),
    ]


def missing_files(
    file_names: np.ndarray, image_ids: np.ndarray, images_dir: Path
) -> Finding | None:
    """The finding for images whose file is not in ``images_dir`` (one directory listing)."""
    try:
        present = set(p.name for p in Path(images_dir).iterdir())
    except OSError:
        present = set()
    nested = [i for i, f in enumerate(file_names) if "/" in f or "\\" in f]
    missing = np.array([f not in present for f in file_names], dtype=bool)
    for i in nested:  # names with sub-folders: ask the filesystem
        missing[i] = not (Path(images_dir) / file_names[i]).is_file()
    return _finding(
        "missing_image_file",
        "error",
        missing,
        f"images whose file is not in {images_dir}",
        image_ids,
    )
