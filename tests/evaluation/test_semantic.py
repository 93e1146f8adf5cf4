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


def test_a_column_past_the_classes_is_wrong_never_a_class():
    """Predictions of value n (a mask's unlabelled pixels) fall in an extra column: they lower
    pixel accuracy and their truth class's IoU, and give no class an IoU of its own."""
    target = np.array([0, 0, 1, 1, 255])
    pred = np.array([0, 2, 1, 2, 2])
    conf = confusion_matrix(target, pred, 2, columns=3)
    assert conf.tolist() == [[1, 0, 1], [0, 1, 1]]
    s = segmentation_scores(conf)
    assert s["pixel_acc"] == pytest.approx(2 / 4)
    assert s["per_class_iou"].tolist() == pytest.approx([1 / 2, 1 / 2])
    square = confusion_matrix(np.array([0, 1]), np.array([1, 1]), 2)
    assert segmentation_scores(square)["per_class_iou"].tolist() == pytest.approx([0.0, 0.5])
