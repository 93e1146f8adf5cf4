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


def run_cli(*args: str, env: dict | None = None, timeout: float = 300):
    """``python -m explorer ARGS`` as a user runs it (from the project root), output captured."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "explorer", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def coco_subset(src: Path, out: Path, n: int) -> Path:
    """A copy of a COCO file with its first ``n`` images and their annotations."""
    doc = json.loads(src.read_text())
    doc["images"] = doc["images"][:n]
    keep = {im["id"] for im in doc["images"]}
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
    out.write_text(json.dumps(doc))
    return out


def train_command(data: dict[str, str], out: Path, *extra: str) -> list[str]:
    """``python -m explorer train`` on a ``tiny_data`` slice into ``out``, on the CPU, quiet."""
    import sys

    args = [sys.executable, "-m", "explorer", "train", "--device", "cpu", "--quiet"]
    for key in ("coco", "images", "val_coco", "val_images"):
        args += [f"--{key.replace('_', '-')}", data[key]]
    return [*args, "--out", str(out), *extra]
