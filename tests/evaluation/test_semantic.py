"""Metrics computed like torchvision's segmentation reference, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.evaluation.semantic import confusion_matrix, segmentation_scores


def test_confusion_matrix_and_scores_by_hand():
    target = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = confusion_matrix(target, pred, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    s = segmentation_scores(conf)
    assert s["pixel_acc"] == pytest.approx(4 / 5)
    assert s["per_class_iou"].tolist() == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert s["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    s = segmentation_scores(confusion_matrix(np.array([0, 0]), np.array([0, 0]), 3))
    assert s["miou"] == 1.0 and np.isnan(s["per_class_iou"][1])  # absent classes left out
