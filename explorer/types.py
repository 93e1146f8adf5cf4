"""Names for the choices and constants that cross modules: one home each.

``Literal`` aliases say which values a string may take (a type checker and a reader both see
them); the constants are the single definitions every module imports; :class:`Category` is the
one record shape that nearly every layer reads.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

Task = Literal["classify", "segment"]
TASKS: tuple[Task, ...] = ("classify", "segment")

LabelSpace = Literal["imagenet", "voc", "dataset"]
"""A model's labels: ImageNet-1k, Pascal VOC-21 (0 = background), or a dataset's own classes."""

MaskLabels = Literal["coco", "voc"]
"""Pixel values of a semantic mask: COCO category ids, or the 21 Pascal-VOC labels."""

Crowd = Literal["any", "only", "none"]
MatchMode = Literal["any", "all"]
JobStatus = Literal["queued", "running", "finished", "stopped", "failed"]

ResultKind = Literal["bbox", "segm", "keypoints"]
RESULT_KINDS: tuple[ResultKind, ...] = ("bbox", "segm", "keypoints")
"""What a COCO results file's records are scored as: pycocotools' ``iouType``."""

ErrorCause = Literal["classification", "localisation", "both", "duplicate", "background"]
ERROR_CAUSES: tuple[ErrorCause, ...] = (
    "classification",
    "localisation",
    "both",
    "duplicate",
    "background",
)
"""Why a false positive is false, in TIDE's order of tests (``explorer.evaluation.errors``)."""

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
"""Device choices a user can give; ``cuda:N`` is accepted too."""


class Category(TypedDict):
    """A dataset category as the COCO index keeps it (``CocoIndex.categories``, in file order).

    Every layer above the index reads these (labels, models, figures, the app). A keypoint
    category also has ``keypoints`` (its K keypoint names, in the order of each annotation's
    x y v triples) and ``skeleton`` (the pairs of 1-based keypoint numbers joined by a line);
    other categories leave both out.
    """

    id: int  # a string id in the file is mapped to a number (``coco._records.string_id``)
    name: str
    supercategory: str  # "" when the file gives none, or null: always there for readers
    keypoints: NotRequired[list[str]]
    skeleton: NotRequired[list[list[int]]]


CocoSplit = Literal["val2017", "train2017"]
COCO_SPLITS: tuple[CocoSplit, ...] = ("val2017", "train2017")
"""The COCO 2017 splits ``download coco`` fetches (those with instance annotations)."""
COCO_HOST = "http://images.cocodataset.org"
"""COCO's official download host: annotation and image zips, and every image's ``coco_url``."""

IGNORE_LABEL = 255
"""Semantic masks and training targets: pixels covered by two or more annotations (torchvision's
segmentation reference ignores them in the loss and in every metric)."""

SizeClass = Literal["small", "medium", "large"]
SIZE_RANGES: dict[SizeClass, tuple[float, float]] = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, float("inf")),
}
"""COCO's object size classes by area in pixels: small < 32² <= medium < 96² <= large."""


def size_class(area: float) -> SizeClass:
    """COCO's size class of an area (a negative or missing area counts as small)."""
    return next((k for k, (lo, hi) in SIZE_RANGES.items() if lo <= area < hi), "small")


MAX_IMAGE_PIXELS = 64_000_000
"""The largest image (width x height) the product handles, 64 megapixels (e.g. 8000x8000).
Image files above it are refused before decoding: a decoded RGB image of that size is 192 MB,
and a few hundred bytes of PNG can declare 90000x90000 (24 GB); PIL's own limit (89 megapixels
a warning, an error above twice that) still costs gigabytes and tens of seconds just under it.
Image records above it are skipped when an annotation file is opened (reported in health), so
no mask is ever allocated for them."""
