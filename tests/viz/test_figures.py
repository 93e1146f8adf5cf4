"""Distributions' figures on real data: the same numbers as numpy's reference functions."""

from __future__ import annotations

import numpy as np

from explorer.coco import open_index, stats
from explorer.viz.figures import distributions
from tests.helpers import tiny


def test_centre_heatmap_counts_as_histogram2d():
    index = open_index(tiny("val2017")[0])
    g = stats.box_geometry(index)
    want, _, _ = np.histogram2d(
        np.clip(g["cy"], 0, 1), np.clip(g["cx"], 0, 1), bins=40, range=[[0, 1], [0, 1]]
    )
    got = np.asarray(distributions.centre_heatmap(g["cx"], g["cy"]).data[0].z)
    assert got.sum() == len(g["cx"]) and (got == want).all()


def test_image_size_scatter_merges_equal_sizes():
    index = open_index(tiny("val2017")[0])
    w, h = index.images["width"], index.images["height"]
    trace = distributions.image_size_scatter(w, h).data[0]
    want = {
        (int(a), int(b)): n
        for (a, b), n in zip(
            *np.unique(np.stack([w, h], 1), axis=0, return_counts=True), strict=True
        )
    }
    got = {
        (int(a), int(b)): int(n) for a, b, n in zip(trace.x, trace.y, trace.customdata, strict=True)
    }
    assert got == want and sum(got.values()) == index.num_images


def test_size_bars_are_linear_and_shares_sum_to_one():
    index = open_index(tiny("val2017")[0])
    sizes = stats.size_classes(index)
    counts = distributions.size_class_bars(index.categories, sizes)
    shares = distributions.size_class_bars(index.categories, sizes, shares=True)
    assert counts.layout.yaxis.type == "linear" and shares.layout.yaxis.type == "linear"
    assert counts.layout.barnorm is None and shares.layout.barnorm == "fraction"
    assert "Share" in shares.layout.title.text
