"""Helpers for tests: the real coco-tiny files, pycocotools, hand-made COCO files."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COCO_TINY = ROOT.parent / "shared" / "coco-tiny"


def tiny(split: str = "val2017") -> tuple[Path, Path]:
    """(annotation file, image folder) of coco-tiny, or skip the test when it is absent."""
    ann = COCO_TINY / "annotations" / f"instances_{split}.json"
    if not ann.is_file():
        pytest.skip(f"real COCO sample not found at {COCO_TINY} (the shared/coco-tiny folder)")
    return ann, COCO_TINY / split


def pycoco(path: Path):
    """pycocotools' COCO, silenced."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def write_coco(
    path: Path, images: list[dict], annotations: list[dict], categories: list[dict] | None = None
) -> Path:
    """Write a hand-made COCO instances file."""
    categories = (
        categories
        if categories is not None
        else [
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 3, "name": "car", "supercategory": "vehicle"},
            {"id": 90, "name": "toothbrush", "supercategory": "indoor"},
        ]
    )
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


def square(x: float, y: float, s: float) -> list[list[float]]:
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]
