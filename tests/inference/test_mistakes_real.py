"""Mistakes and the map on real COCO images (coco-tiny) with the published label spaces:
ImageNet's AlexNet and VOC's DeepLabV3 (saved random weights: none can be downloaded here, so
what is checked is the plumbing and the label-space rules, not the quality)."""

from __future__ import annotations

import numpy as np

from explorer.coco.dataset import Dataset
from explorer.coco.labels import dataset_label_map
from explorer.inference import embeddings, mistakes
from explorer.inference.options import RunOptions
from explorer.inference.pair import ModelPair
from explorer.models import WeightsFile, load_model

ROWS = np.arange(6)


def test_only_categories_a_model_can_name_are_judged(real, alexnet_file, mbv3_file):
    index, images = real
    cls = load_model("alexnet", WeightsFile(alexnet_file), "cpu")
    seg = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file), "cpu")
    result = mistakes.find_mistakes(
        ModelPair(cls, seg), Dataset(index, images), ROWS, options=RunOptions(workers=0)
    )
    cats = index.categories
    reach = {m for m in dataset_label_map("imagenet", cls.class_names, cats) if m is not None}
    reach |= {m for m in dataset_label_map("voc", seg.class_names, cats) if m is not None}
    anns = index.annotations
    kept = [a for r in ROWS for a in index.annotation_rows(int(r)) if not anns["iscrowd"][a]]
    assert result.objects == len(kept)
    assert result.judged == sum(int(anns["category_id"][a]) in reach for a in kept)
    for row in result.rows:
        assert row["category_id"] in reach  # a suggestion is always a nameable category
        if row["kind"] != "missing":
            assert row["annotated_category_id"] in reach
    assert 0 < result.judged < result.objects  # coco-tiny has categories neither can name


def test_the_map_of_real_objects_has_one_point_each(real, alexnet_file):
    index, images = real
    cls = load_model("alexnet", WeightsFile(alexnet_file), "cpu")
    m = embeddings.embed(cls, Dataset(index, images), ROWS, "pca", RunOptions(workers=0))
    anns = index.annotations
    kept = {
        int(anns["id"][a])
        for r in ROWS
        for a in index.annotation_rows(int(r))
        if not anns["iscrowd"][a]
    }
    assert set(m.annotation_id.tolist()) == kept and m.unread == 0
    assert m.vectors.shape[1] <= embeddings.PCA_DIMS and np.isfinite(m.vectors).all()
