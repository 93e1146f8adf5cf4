"""Corrections to a COCO file, written to a new file: the user's annotation file is never changed.

A :class:`Fix` says what to change: give an annotation another category (``relabel``), replace
its mask (``remask``) or add a missing object (``add``). :func:`write_corrected` reads the
original JSON, applies the fixes by annotation id, and writes the result atomically to a path
that does not exist yet (never over another file: not the source, not another annotation file
beside it); everything else in the file (info, licenses, other keys) is kept as it was.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict

from explorer.errors import ExplorerError
from explorer.paths import atomic_file

FixKind = Literal["relabel", "remask", "add"]


@dataclass(frozen=True)
class Fix:
    """One change. ``rle`` is a compressed RLE's counts at the image's size (``remask``,
    optionally ``add``); ``bbox`` is [x, y, w, h] (``add``)."""

    kind: FixKind
    image_id: int
    annotation_id: int = -1  # -1 for ``add``
    category_id: int = -1
    bbox: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    rle: str = ""


class Counts(TypedDict):
    """What the fixes did to the file."""

    relabelled: int
    remasked: int
    added: int
    added_ids: list[int]
    not_found: list[int]  # annotation ids a fix named that the file does not hold


class Written(Counts):
    path: str


def write_corrected(source: Path, fixes: list[Fix], out: Path) -> Written:
    """Write ``source`` with ``fixes`` applied to ``out``, a file that must not exist yet.

    Raises:
        ExplorerError: ``out`` exists (the annotation file itself or any other: nothing is ever
            overwritten, even by a file that appears while this one is written), or ``source``
            is not a COCO JSON object.
        StorageError: ``out``'s folder cannot be written (missing, no permission, read-only,
            full, a file in its place).
    """
    import msgspec

    source, out = Path(source), Path(out)
    _refuse_existing(source, out)
    try:
        data = msgspec.json.decode(source.read_bytes())
    except (OSError, msgspec.DecodeError) as e:
        raise ExplorerError(f"{source}: cannot be read as JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("annotations"), list):
        raise ExplorerError(f"{source}: not a COCO instances file (no annotations list)")
    sizes = {
        im.get("id"): (im.get("height"), im.get("width"))
        for im in data.get("images") or []
        if isinstance(im, dict)
    }
    written = _apply(data["annotations"], fixes, sizes)
    with atomic_file(out, new=True) as f:  # refuses a name taken since the check above
        f.write(msgspec.json.encode(data))
    return {"path": str(out), **written}


def _refuse_existing(source: Path, out: Path) -> None:
    """An early, clear refusal of a taken name (the write itself refuses it again, atomically)."""
    if not os.path.lexists(out):
        return
    if out.exists() and os.path.samefile(out, source):
        raise ExplorerError(f"{out}: that is the annotation file itself; choose another name")
    raise ExplorerError(f"{out}: already exists; choose a new name (nothing is overwritten)")


def _apply(annotations: list[Any], fixes: list[Fix], sizes: dict[Any, Any]) -> Counts:
    by_id = {a.get("id"): a for a in annotations if isinstance(a, dict)}
    next_id = max((i for i in by_id if isinstance(i, int)), default=0) + 1
    counts: Counts = {"relabelled": 0, "remasked": 0, "added": 0, "added_ids": [], "not_found": []}
    for f in fixes:
        if f.kind == "add":
            # a decoded JSON object: its values are whatever the file holds
            ann: dict[str, Any] = {
                "id": next_id,
                "image_id": f.image_id,
                "category_id": f.category_id,
            }
            ann |= {"iscrowd": 0, "bbox": [round(v, 2) for v in f.bbox], "segmentation": []}
            ann["area"] = round(f.bbox[2] * f.bbox[3], 2)
            if f.rle:
                ann |= _mask_fields(f.rle, sizes.get(f.image_id))
            annotations.append(ann)
            counts["added"] += 1
            counts["added_ids"].append(next_id)
            next_id += 1
            continue
        named = by_id.get(f.annotation_id)
        if named is None:
            counts["not_found"].append(f.annotation_id)
        elif f.kind == "relabel":
            named["category_id"] = f.category_id
            counts["relabelled"] += 1
        else:
            named |= _mask_fields(f.rle, sizes.get(named.get("image_id")))
            counts["remasked"] += 1
    return counts


def _mask_fields(counts: str, size: tuple[Any, Any] | None) -> dict[str, Any]:
    """``segmentation`` (compressed RLE), ``bbox`` and ``area`` of a mask."""
    from pycocotools import mask as mask_utils

    if not size or not all(isinstance(v, int) and v > 0 for v in size):
        raise ExplorerError("a corrected mask needs its image's height and width in the file")
    rle = {"size": [int(size[0]), int(size[1])], "counts": counts.encode()}
    bbox = [round(float(v), 2) for v in mask_utils.toBbox(rle)]
    return {
        "segmentation": {"size": rle["size"], "counts": counts},
        "bbox": bbox,
        "area": float(mask_utils.area(rle)),
    }
