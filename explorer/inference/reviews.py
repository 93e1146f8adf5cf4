"""What a person decided about suspected mistakes, kept in a small sidecar file in the cache.

One JSON file per annotation file (``<cache>/reviews/<hash of its path>.json``): a row of
:mod:`explorer.inference.mistakes` is ``reviewed`` (looked at: not a mistake) or ``confirmed``
(a mistake to fix). The annotation file itself is never written; :func:`confirmed_fixes` turns
the confirmed rows into :class:`explorer.coco.corrections.Fix` values for a corrected copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Literal

from explorer.coco.corrections import Fix
from explorer.paths import atomic_write_json, cache_dir

Decision = Literal["reviewed", "confirmed"]
DECISIONS: tuple[Decision, ...] = ("reviewed", "confirmed")
_LOCK = threading.Lock()  # two sessions of the app may decide at once


def row_key(row) -> str:
    """A mistake row's identity across runs: its kind and annotation (or, for a missing object,
    its image, category and box)."""
    if int(row["annotation_id"]) >= 0:
        return f"{row['kind']}:{int(row['annotation_id'])}"
    box = ",".join(f"{float(v):.1f}" for v in row["bbox"])
    return f"missing:{int(row['image_id'])}:{int(row['category_id'])}:{box}"


def reviews_path(annotations: str | Path) -> Path:
    real = os.path.realpath(annotations)
    return cache_dir("reviews") / f"{hashlib.sha1(real.encode()).hexdigest()[:16]}.json"


def load(annotations: str | Path) -> dict[str, Decision]:
    """The decisions made on this annotation file (none when there is no sidecar, or it is
    damaged: a sidecar is never worth a crash)."""
    try:
        data = json.loads(reviews_path(annotations).read_text())
    except (OSError, ValueError):
        return {}
    decisions = data.get("decisions") if isinstance(data, dict) else None
    if not isinstance(decisions, dict):
        return {}
    return {str(k): v for k, v in decisions.items() if v in DECISIONS}


def decide(annotations: str | Path, key: str, decision: Decision | None) -> dict[str, Decision]:
    """Record (or with None, forget) one decision; returns all of them."""
    with _LOCK:
        decisions = load(annotations)
        if decision is None:
            decisions.pop(key, None)
        else:
            decisions[key] = decision
        atomic_write_json(
            reviews_path(annotations),
            {"annotations": os.path.realpath(annotations), "decisions": decisions},
        )
    return decisions


def fix_of(row) -> Fix:
    """The change a confirmed row asks for: a new category, a new mask, or a new object."""
    kind = str(row["kind"])
    x, y, w, h = (float(v) for v in row["bbox"])
    image, category = int(row["image_id"]), int(row["category_id"])
    if kind == "wrong_label":
        return Fix("relabel", image, annotation_id=int(row["annotation_id"]), category_id=category)
    if kind == "bad_mask":
        rle = str(row["suggested_rle"])
        annotation = int(row["annotation_id"])
        return Fix("remask", image, annotation_id=annotation, category_id=category, rle=rle)
    rle = str(row["suggested_rle"] or "")
    return Fix("add", image, category_id=category, bbox=(x, y, w, h), rle=rle)


def confirmed_fixes(frame, decisions: dict[str, Decision]) -> list[Fix]:
    """The fixes of the rows of a mistakes table (a DataFrame) that were confirmed."""
    return [fix_of(r) for _, r in frame.iterrows() if decisions.get(row_key(r)) == "confirmed"]
