"""Label spaces and the maps between them: the one place that knows each.

Pascal VOC: torchvision's DeepLabV3 ``COCO_WITH_VOC_LABELS_V1`` weights predict 21 labels,
background plus the 20 VOC classes, all of which are COCO categories. The COCO category id of
VOC label ``i`` (1..20) is ``VOC_COCO_IDS[i - 1]`` (the list of torchvision's segmentation
reference, ``references/segmentation/coco_utils.py``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

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


def dataset_label_map(label_space: str, class_names, categories: list[dict]) -> list[int | None]:
    """For each model label, the dataset category id it maps to (matched by name), or None."""
    by_name = {c["name"]: c["id"] for c in categories}
    return [
        by_name.get(coco_name_of_label(label_space, i, class_names))
        for i in range(len(class_names))
    ]
