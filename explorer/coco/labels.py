"""Label spaces and the maps between them: the one place that knows each.

Pascal VOC: torchvision's DeepLabV3 ``COCO_WITH_VOC_LABELS_V1`` weights predict 21 labels,
background plus the 20 VOC classes, all of which are COCO categories. The COCO category id of
VOC label ``i`` (1..20) is ``VOC_COCO_IDS[i - 1]`` (the list of torchvision's segmentation
reference, ``references/segmentation/coco_utils.py``).

Categories meet across label spaces by *name*, never by numeric id: a dataset's ids need not be
COCO's (the embedded sample numbers its shapes 1..7, which are COCO's person, bicycle, car...).
:func:`name_key` is the one comparison (case, spaces and VOC spellings such as "motorbike" or
"tvmonitor" folded); for COCO's own category list it gives exactly torchvision's id list.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from explorer.types import Category

VOC_NAMES = (
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

# COCO ids of VOC labels 1..20: airplane, bicycle, bird, boat, bottle, bus, car, cat, chair, cow,
# dining table, dog, horse, motorcycle, person, potted plant, sheep, couch, train, tv
VOC_COCO_IDS = (5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)

# the COCO names of VOC labels 1..20, in order (same categories as VOC_COCO_IDS)
VOC_COCO_NAMES = (
    "airplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "dining table",
    "dog",
    "horse",
    "motorcycle",
    "person",
    "potted plant",
    "sheep",
    "couch",
    "train",
    "tv",
)

_DATA = Path(__file__).resolve().parent / "data"

# VOC (and other common) spellings of COCO names, compared after case and spaces are folded
_SYNONYMS = {
    "aeroplane": "airplane",
    "motorbike": "motorcycle",
    "tvmonitor": "tv",
    "sofa": "couch",
}


def name_key(name: object) -> str:
    """A category name as label spaces compare it: lower case, without spaces, underscores or
    hyphens, VOC spellings as COCO's ("Dining_table", "diningtable" -> "diningtable";
    "motorbike" -> "motorcycle")."""
    key = "".join(ch for ch in str(name).lower() if ch not in " _-\t")
    return _SYNONYMS.get(key, key)


_VOC_BY_KEY = {name_key(n): i for i, n in enumerate(VOC_COCO_NAMES, start=1)}


def voc_label_of(name: object) -> int:
    """The VOC label (1..20) of a category name, or 0 when VOC has no such class."""
    return _VOC_BY_KEY.get(name_key(name), 0)


def voc_labels(categories: list[Category]) -> dict[int, int]:
    """Dataset category id -> VOC label (1..20), matched by name; categories without a VOC
    counterpart are left out (:func:`without_counterpart` names them)."""
    out = {}
    for c in categories:
        label = voc_label_of(c.get("name"))
        if label:
            out[int(c["id"])] = label
    return out


def without_counterpart(categories: list[Category], matched) -> list[str]:
    """The names of the ``categories`` whose id is not in ``matched``, in file order."""
    have = set(matched)
    return [str(c.get("name")) for c in categories if int(c["id"]) not in have]


@functools.lru_cache(maxsize=1)
def imagenet_to_coco() -> dict[int, str]:
    """ImageNet-1k class index -> COCO category name, for the classes that have a counterpart.

    The map and its rule live in ``explorer/coco/data/imagenet_to_coco.json``.
    """
    doc = json.loads((_DATA / "imagenet_to_coco.json").read_text())
    return {e["index"]: e["coco"] for e in doc["map"]}


def coco_name_of_label(
    label_space: str, index: int, class_names: list[str] | tuple[str, ...]
) -> str | None:
    """The COCO category name a model label stands for, or None (no counterpart, or background).

    Args:
        label_space: ``imagenet`` (1000 classes), ``voc`` (21, 0 = background) or ``dataset`` (the
            class names a checkpoint was trained with; for segmentation index 0 is background).
        index: the model's label index.
        class_names: the model's label names.
    """
    if label_space == "imagenet":
        return imagenet_to_coco().get(int(index))
    if label_space == "voc":
        return VOC_COCO_NAMES[index - 1] if 1 <= index <= 20 else None
    name = class_names[index] if 0 <= index < len(class_names) else None
    return None if name in (None, "__background__", "background") else name


def dataset_label_map(
    label_space: str, class_names, categories: list[Category]
) -> list[int | None]:
    """For each model label, the dataset category id it maps to (matched by :func:`name_key`),
    or None."""
    by_key: dict[str, int] = {}
    for c in categories:
        by_key.setdefault(name_key(c["name"]), c["id"])
    out: list[int | None] = []
    for i in range(len(class_names)):
        name = coco_name_of_label(label_space, i, class_names)
        out.append(None if name is None else by_key.get(name_key(name)))
    return out
