""" "More like this" on a real map of a trained classifier (the quick classifier of the sample):
its nearest neighbours' cosines all round to 1.000 at three decimals, so the Map shows each
neighbour's rank and distance, which tell them apart, against the map's median distance."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.inference.embeddings import embed
from explorer.inference.map_queries import distance_text, median_distance, neighbour_table
from explorer.inference.options import IN_THIS_THREAD
from explorer.models import load_model


@pytest.fixture(scope="module")
def trained_map(quick_runs, sample_root):
    images = sample_root / "val2017"
    index = open_index(sample_root / "annotations/instances_val2017.json", images=images)
    model = load_model(str(quick_runs["cls"]), device="cpu")
    m = embed(model, Dataset(index, images), np.arange(60), "pca", IN_THIS_THREAD)
    return m, {int(c["id"]): c["name"] for c in index.categories}


def test_neighbours_read_apart_by_rank_and_distance(trained_map):
    m, names = trained_map
    for a in m.annotation_id[:5]:
        table = neighbour_table(m, int(a), names)
        assert table["rank"].tolist() == list(range(len(table)))
        assert table["distance"].iloc[0] == pytest.approx(0.0, abs=1e-3)
        d = table["distance"].to_numpy()[1:]
        assert np.all(np.diff(d) >= -1e-6)  # nearest first
        cos = table["similarity"].to_numpy()[1:]
        assert np.allclose(d, np.sqrt(2 - 2 * cos))
        shown = [distance_text(x) for x in d]
        # two distances that differ by more than 1% never read alike (three significant digits)
        for i in range(len(d) - 1):
            assert shown[i] != shown[i + 1] or d[i + 1] <= 1.01 * d[i], (shown, d)
        # the map's scale: its median object is far beyond the neighbours
        assert median_distance(m, int(a)) > 5 * d[-1]


def test_a_trained_classifiers_neighbours_all_round_to_one(trained_map):
    """Why the similarity column is no longer what the Map shows: the walk's finding, kept
    true of the model this test file uses (if it stops being true, the test above still says
    what matters)."""
    m, names = trained_map
    table = neighbour_table(m, int(m.annotation_id[0]), names)
    assert np.round(table["similarity"].to_numpy()[1:4], 3).min() >= 0.99
