"""The Evaluate page's figures: what is drawn and what a click gives back."""

from __future__ import annotations

import numpy as np

from explorer.viz.figures.evaluation import (
    category_ap_bars,
    clicked,
    compare_ap_dots,
    confusion_matrix,
    error_bars,
    pr_curves,
)


def test_ap_bars_sort_best_on_top_and_name_categories_without_truth():
    fig = category_ap_bars(
        ["cat", "dog", "emu"], np.array([1, 2, 3]), np.array([0.2, -1, 0.7]), "AP"
    )
    bar = fig.data[0]
    assert list(bar.y) == ["cat", "emu"]  # plotly draws the first lowest: best on top
    assert list(bar.customdata) == [1, 3]
    assert "no ground truth: dog" in fig.layout.title.text


def test_confusion_cells_give_back_their_place_in_the_full_matrix():
    full = np.array([[5, 1, 0, 2], [0, 3, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]])
    shown = np.array([0, 1, 3])  # category 2 left out, background last
    fig = confusion_matrix(
        full[np.ix_(shown, shown)], ["a", "b", "bg"], ["a", "b", "bg"], (shown, shown)
    )
    targets = fig.data[1]
    cells = {
        (x, y): tuple(c) for x, y, c in zip(targets.x, targets.y, targets.customdata, strict=True)
    }
    assert cells == {
        ("a", "a"): (0, 0), ("b", "a"): (0, 1), ("bg", "a"): (0, 3),
        ("b", "b"): (1, 1), ("a", "bg"): (3, 0),
    }  # fmt: skip
    assert clicked({"points": [{"customdata": [1, 3]}]}) == [1, 3]
    assert clicked({"points": [{"customdata": 7}]}) == [7]
    assert clicked({"points": [{"customdata": {"1": 3, "0": 1}}]}) == [1, 3]
    assert clicked({"points": []}) is None and clicked(None) is None


def test_curves_leave_out_missing_values_and_compare_keeps_the_biggest_changes():
    fig = pr_curves(np.linspace(0, 1, 3), {"IoU 0.50": np.array([1.0, 0.5, -1])}, "t")
    assert np.isnan(fig.data[0].y[2]) and fig.data[0].y[1] == 0.5
    fig = compare_ap_dots(
        ["a", "b", "c", "d"],
        np.array([0.1, 0.5, -1, 0.4]),
        np.array([0.6, 0.4, 0.3, 0.4]),
        ("A", "B"),
        top=2,
    )
    assert list(fig.data[1].y) == ["b", "a"]  # the two biggest changes; the gain on top
    fig = error_bars({"duplicate": 3, "missed": 5}, {"duplicate": 0.01, "missed": 0.2})
    assert list(fig.data[0].y) == ["missed", "duplicate"] and list(fig.data[0].x) == [5, 3]
