"""What an evaluation computes: pycocotools' ``Params``, typed, with the same float values.

The thresholds are built exactly as pycocotools builds them (``np.linspace``): its
``iouThrs[8]`` is 0.8999999999999999 and ten of its recall thresholds are one ulp above k/100,
which decides where precision is read (see ``../shared/notes/evaluation.md`` §2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import numpy as np

from explorer.errors import ExplorerError

IouType = Literal["bbox", "segm", "keypoints"]
IOU_TYPES: tuple[IouType, ...] = get_args(IouType)

# COCO's per-keypoint standard deviations (nose, eyes, ears, shoulders, elbows, wrists, hips,
# knees, ankles), as pycocotools writes them
COCO_KEYPOINT_SIGMAS = (
    np.array(
        [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
    )
    / 10.0
)  # fmt: skip


def _iou_thresholds() -> np.ndarray:
    return np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)


def _recall_thresholds() -> np.ndarray:
    return np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


_DETECTION_AREAS = ((0**2, 1e5**2), (0**2, 32**2), (32**2, 96**2), (96**2, 1e5**2))
_KEYPOINT_AREAS = ((0**2, 1e5**2), (32**2, 96**2), (96**2, 1e5**2))


class EvaluationError(ExplorerError):
    """Evaluation parameters that cannot be evaluated (no thresholds, a bad area range...)."""


@dataclass(frozen=True)
class EvalParams:
    """pycocotools' ``Params`` for one iou type.

    Attributes:
        iou_type: ``bbox``, ``segm`` or ``keypoints``.
        iou_thresholds: IoU (OKS) thresholds, ascending (``iouThrs``).
        recall_thresholds: where precision is read (``recThrs``).
        max_dets: detections kept per image and category, ascending (``maxDets``).
        area_ranges: ``(low, high)`` object areas, inclusive; the first is "all".
        area_labels: one label per area range.
        image_ids: the images evaluated (``imgIds``); ``None``: every image of the dataset.
        category_ids: the categories evaluated (``catIds``); ``None``: every category.
        keypoint_sigmas: per-keypoint sigmas of the OKS.
    """

    iou_type: IouType
    iou_thresholds: np.ndarray = field(default_factory=_iou_thresholds)
    recall_thresholds: np.ndarray = field(default_factory=_recall_thresholds)
    max_dets: tuple[int, ...] = (1, 10, 100)
    area_ranges: tuple[tuple[float, float], ...] = _DETECTION_AREAS
    area_labels: tuple[str, ...] = ("all", "small", "medium", "large")
    image_ids: np.ndarray | None = None
    category_ids: np.ndarray | None = None
    keypoint_sigmas: np.ndarray = field(default_factory=lambda: COCO_KEYPOINT_SIGMAS.copy())

    @classmethod
    def for_iou_type(cls, iou_type: str, **overrides) -> EvalParams:
        """COCO's defaults for ``iou_type`` (pycocotools' ``setDetParams`` / ``setKpParams``),
        with ``overrides`` applied and checked."""
        if iou_type not in IOU_TYPES:
            raise EvaluationError(
                f"unknown iou type {iou_type!r}: choose one of {', '.join(IOU_TYPES)}"
            )
        params = cls(iou_type=iou_type)
        if iou_type == "keypoints":
            params = replace(
                params,
                max_dets=(20,),
                area_ranges=_KEYPOINT_AREAS,
                area_labels=("all", "medium", "large"),
            )
        return replace(params, **overrides).checked()

    def checked(self) -> EvalParams:
        """These parameters with ids de-duplicated and sorted and ``max_dets`` sorted (as
        pycocotools' ``evaluate`` rewrites them); raises :class:`EvaluationError` on values
        that cannot be evaluated."""
        thresholds = np.asarray(self.iou_thresholds, np.float64)
        if not len(thresholds) or not np.isfinite(thresholds).all():
            raise EvaluationError("the IoU thresholds must be finite numbers (at least one)")
        if not self.max_dets or min(self.max_dets) < 1:
            raise EvaluationError("maxDets must be positive integers (at least one)")
        if len(self.area_ranges) != len(self.area_labels) or not self.area_ranges:
            raise EvaluationError("give one label per area range (at least one range)")
        return replace(
            self,
            iou_thresholds=thresholds,
            max_dets=tuple(sorted(int(m) for m in self.max_dets)),
            image_ids=None if self.image_ids is None else np.unique(self.image_ids),
            category_ids=None if self.category_ids is None else np.unique(self.category_ids),
        )
