"""The object map on the sample with a quick-trained classifier: one point per object,
neighbourhoods that mean something, a cache, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference import cache, embeddings, runner
from explorer.inference.options import RunOptions
from explorer.inference.runner import items_for_crops
from explorer.models import PUBLISHED, load_model
from explorer.models.features import feature_model
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def val(quick_runs, sample_root):
    ann = sample_root / "annotations/instances_val2017.json"
    index = open_index(ann, images=sample_root / "val2017")
    model = load_model(
        str(quick_runs["cls"]), PUBLISHED, "cpu", dataset_categories=index.categories
    )
    return index, sample_root / "val2017", model


def knn_agreement(m: embeddings.ObjectMap, k: int = 5) -> float:
    """Leave-one-out k-NN vote on the 2-D map recovers the annotated category (as the
    acceptance check measures it)."""
    xy = np.stack([m.x, m.y], 1).astype(float)
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, 1)[:, :k]
    vote = np.array([np.bincount(m.category_id[r]).argmax() for r in nn])
    return float((vote == m.category_id).mean())


@pytest.mark.parametrize("method", ["umap", "pca"])
def test_one_point_per_object_and_meaningful_neighbourhoods(val, method):
    index, images, model = val
    m = embeddings.embed(
        model, Dataset(index, images), method=method, options=RunOptions(workers=0)
    )
    anns = index.annotations
    want = sorted(int(i) for i, c in zip(anns["id"], anns["iscrowd"], strict=True) if not c)
    assert sorted(m.annotation_id.tolist()) == want and m.unread == 0
    assert np.isfinite(m.x).all() and np.isfinite(m.y).all()
    # UMAP groups the categories; PCA's first two axes of 7 categories much less so
    assert knn_agreement(m) >= (0.85 if method == "umap" else 0.5)
    frame = m.to_frame()
    assert list(frame.columns)[:3] == ["annotation_id", "image_id", "category_id"]
    row = {int(a): r for r, a in enumerate(anns["id"])}
    a = int(m.annotation_id[7])
    assert m.image_id[7] == index.images["id"][anns["image_row"][row[a]]]
    assert m.category_id[7] == anns["category_id"][row[a]]


def test_a_second_call_comes_from_the_cache(val, monkeypatch):
    index, images, model = val
    first = embeddings.embed(
        model, Dataset(index, images), method="pca", options=RunOptions(workers=0)
    )
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("the model ran again"))
    again = embeddings.embed(
        model, Dataset(index, images), method="pca", options=RunOptions(workers=0)
    )
    assert again.from_cache and np.array_equal(again.x, first.x)
    assert np.array_equal(again.annotation_id, first.annotation_id)


def test_more_like_this_finds_the_same_category(val):
    index, images, model = val
    m = embeddings.embed(model, Dataset(index, images), method="pca", options=RunOptions(workers=0))
    cat = dict(zip(m.annotation_id.tolist(), m.category_id.tolist(), strict=True))
    same = []
    for a in m.annotation_id[::25]:
        near = m.neighbours(int(a), k=5)
        assert int(a) not in near.tolist() and len(near) == 5
        same += [cat[int(b)] == cat[int(a)] for b in near]
    assert np.mean(same) >= 0.85
    with pytest.raises(ExplorerError, match="not on the map"):
        m.neighbours(-5)


def test_features_are_the_penultimate_layer_and_cached_apart(val):
    index, images, model = val
    features, dataset = feature_model(model), Dataset(index, images)
    assert cache.store_for(features, dataset).path != cache.store_for(model, dataset).path
    items = items_for_crops(index, [0])
    (_, out, _), *_ = cache.predict(features, dataset, items, RunOptions(workers=0))
    assert out.shape == (4096,) and (out >= 0).all()  # after AlexNet's last ReLU


def test_a_segmenter_has_no_map(quick_runs, val):
    index, images, _ = val
    seg = load_model(str(quick_runs["seg"]), PUBLISHED, "cpu", dataset_categories=index.categories)
    with pytest.raises(ExplorerError, match="from a classifier"):
        embeddings.embed(seg, Dataset(index, images))
    with pytest.raises(ExplorerError, match="choose one of"):
        embeddings.embed(val[2], Dataset(index, images), method="mds")


def test_cli_embed_writes_the_map(quick_runs, sample_root, tmp_path):
    ann = sample_root / "annotations/instances_val2017.json"
    out = tmp_path / "map.parquet"
    args = ["--coco", ann, "--images", sample_root / "val2017", "--device", "cpu", "--quiet"]
    run = [sys.executable, "-m", "explorer", "embed", *map(str, args)]
    r = subprocess.run(
        [*run, "--model", str(quick_runs["cls"]), "--method", "pca", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    frame = pd.read_parquet(out)
    assert {"annotation_id", "image_id", "category_id", "x", "y"} <= set(frame.columns)
    assert len(frame) == 366
    bad = subprocess.run(
        [*run, "--model", str(quick_runs["seg"]), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_above_the_fit_limit_pca_and_umap_learn_on_a_sample_and_place_the_rest(val, monkeypatch):
    """train2017's 860k objects go through a fit on a seeded sample and chunked transforms;
    the same path, with the limits scaled down to the sample."""
    index, images, model = val
    monkeypatch.setattr(embeddings, "FIT_LIMIT", 150)
    monkeypatch.setattr(embeddings, "CHUNK", 100)
    m = embeddings.embed(
        model, Dataset(index, images), method="umap", options=RunOptions(workers=0)
    )
    assert len(m) == 366 and not m.from_cache
    assert np.isfinite(m.x).all() and np.allclose(np.linalg.norm(m.vectors, axis=1), 1, atol=1e-3)
    assert knn_agreement(m) >= 0.85
