"""The Map page's pure parts on a real map of the sample (an untrained classifier's features):
sampling, captions, colourings, selections, neighbours, agreement."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.inference.classification import NO_LABEL, agreement
from explorer.inference.map_queries import map_rows_of, mistake_scores, near_ids, neighbour_table
from explorer.inference.options import IN_THIS_THREAD
from explorer.viz.figures.object_map import (
    AGREEMENT_NAMES,
    BY_AGREEMENT,
    BY_CATEGORY,
    BY_SIZE,
    colouring,
    hover_caption,
    object_map_figure,
    picked_from,
    points_frame,
    sample_caption,
    sample_rows,
)


@pytest.fixture(scope="module")
def mapped(sample_root):
    from explorer.inference.embeddings import embed
    from explorer.models import UNTRAINED, load_model

    images = sample_root / "val2017"
    index = open_index(sample_root / "annotations" / "instances_val2017.json", images=images)
    model = load_model("alexnet-classic", UNTRAINED, dataset_categories=index.categories)
    m = embed(model, Dataset(index, images), np.arange(8), "pca", IN_THIS_THREAD)
    names = {int(c["id"]): c["name"] for c in index.categories}
    return model, index, images, m, names


def test_sampling_is_seeded_and_the_caption_says_so():
    assert np.array_equal(sample_rows(10), np.arange(10))
    a, b = sample_rows(860_001), sample_rows(860_001)
    assert len(a) == 50_000 and np.array_equal(a, b) and np.all(np.diff(a) > 0)
    assert a.max() < 860_001
    assert sample_caption(50_000, 860_001) == (
        "showing 50,000 of 860,001 objects, a seeded sample (neighbours use all)"
    )
    assert sample_caption(700, 700) is None


def test_hover_caption_says_which_points_have_thumbnails():
    assert hover_caption(700, 700, 700) is None
    assert hover_caption(1_500, 1_500, 50_000) == (
        "Hover thumbnails for 1,500 of the 50,000 drawn points; click a point to see any object."
    )
    assert hover_caption(400, 1_500, 50_000) == (
        "Hover thumbnails for 400 of the 50,000 drawn points (more with each rerun); click a "
        "point to see any object."
    )


def test_points_and_figure_of_the_map(mapped):
    _, index, _, m, names = mapped
    rows = sample_rows(len(m), limit=len(m) - 3)
    points = points_frame(m, rows, names)
    assert len(points) == len(m) - 3
    want = [names[int(c)] for c in m.category_id[rows]]
    assert points["category"].astype(str).tolist() == want
    fig = object_map_figure(points, colouring(BY_CATEGORY, m, rows, names))
    assert np.array_equal(fig.data[0].customdata, m.annotation_id[rows])
    legend = {t.name for t in fig.data[1:]}
    assert legend == {names[int(c)] for c in np.unique(m.category_id)}
    size = object_map_figure(points, colouring(BY_SIZE, m, rows, names))
    assert len(size.data) == 1
    assert np.allclose(size.data[0].marker.color, np.log10(np.maximum(m.area[rows], 1)))


def test_selection_and_neighbours(mapped):
    _, _, _, m, names = mapped
    a = [int(i) for i in m.annotation_id[:3]]
    sel = {"points": [{"customdata": a[0]}, {"customdata": a[1]}, {"customdata": a[1]}]}
    lasso = picked_from({**sel, "lasso": [{"x": [0]}]})
    assert lasso.annotation_ids.tolist() == a[:2] and lasso.region  # repeats once
    click = picked_from({"points": [{"customdata": a[2]}], "box": [], "lasso": []})
    assert click.annotation_ids.tolist() == [a[2]] and not click.region
    assert picked_from(None).annotation_ids.size == 0
    assert map_rows_of(m, [a[2], -1, a[0]]).tolist() == [2, 0]
    table = neighbour_table(m, a[0], names)
    assert table["annotation_id"].iloc[0] == a[0] and len(table) == min(13, len(m))
    assert table["annotation_id"].iloc[1:].tolist() == m.neighbours(a[0], 12).tolist()
    assert table["similarity"].iloc[0] == pytest.approx(1.0, abs=1e-3)
    assert table["similarity"].is_monotonic_decreasing
    assert table["category"].iloc[0] == names[int(m.category_id[0])]
    assert near_ids(m, a[0]).tolist() == table["annotation_id"].tolist()
    assert near_ids(m, None).size == 0 and near_ids(m, -7).size == 0


def test_mistake_scores_take_the_highest_per_object(mapped):
    _, _, _, m, _ = mapped
    a0, a1 = int(m.annotation_id[0]), int(m.annotation_id[4])
    found = pd.DataFrame(
        {
            "annotation_id": [a0, a0, a1, -1],
            "kind": ["wrong_label", "bad_mask", "wrong_label", "missing"],
            "score": [0.3, 0.8, 0.5, 0.9],
        }
    )
    scores = mistake_scores(m, found)
    assert scores[0] == 0.8 and scores[4] == 0.5 and scores.sum() == pytest.approx(1.3)
    assert not mistake_scores(m, None).any()


def test_agreement_is_the_classifiers_top1_against_the_annotation(mapped):
    from explorer.inference.classification import classification_table

    model, index, images, m, _ = mapped
    codes = agreement(model, Dataset(index, images), m, IN_THIS_THREAD)
    table = classification_table(model, Dataset(index, images), True, np.arange(8), IN_THIS_THREAD)
    table = table.set_index("annotation_id").loc[m.annotation_id]
    nameable = {c for c in model.category_of_label(index.categories) if c is not None}
    want = np.where(
        ~table["true_category_id"].isin(nameable),
        NO_LABEL,
        (table["mapped_category_id"] == table["true_category_id"]).astype(int),
    )
    assert codes.tolist() == want.tolist()
    assert len(set(codes.tolist())) >= 2  # the test means something
    c = colouring(BY_AGREEMENT, m, np.arange(len(m)), {}, codes)
    assert c.names == AGREEMENT_NAMES and np.array_equal(c.codes, codes)


def test_the_more_like_this_legend_clears_the_colour_bar(mapped):
    """Issue 22, walk 12: coloured by a number, the map's colour bar and the legend of its one
    trace ("more like this") were both placed at the top right, one over the other."""
    _, _, _, m, names = mapped
    rows = sample_rows(len(m))
    points = points_frame(m, rows, names)
    fig = object_map_figure(points, colouring(BY_SIZE, m, rows, names), points.head(3))
    assert [t.name for t in fig.data if t.showlegend is not False] == ["more like this"]
    assert fig.data[0].marker.colorbar.title.text == "area (px²) (log10)"
    legend = fig.layout.legend
    # the colour bar fills the right of the plot's height: the legend lies above the plot
    assert legend.orientation == "h" and legend.yanchor == "bottom" and legend.y >= 1
    assert not (legend.title and legend.title.text)  # a number's title is the colour bar's
    # by category the legend names the groups, to the right (no colour bar there)
    grouped = object_map_figure(points, colouring(BY_CATEGORY, m, rows, names), points.head(3))
    assert grouped.layout.legend.title.text == "category"
    assert grouped.layout.legend.orientation != "h"
