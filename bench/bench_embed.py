"""Benchmark: the object map's 2-D methods (UMAP, t-SNE, PCA) on the same features.

Features: the quick-trained classifier's penultimate layer on every non-crowd object of the
sample's val split (the prediction cache: computed once). For each method: seconds to reduce
(PCA to 50 included; in a fresh process, so UMAP's numba compilation is counted) and the
leave-one-out 5-nearest-neighbour agreement with the annotated category, on the 2-D map and,
for reference, in the 50-D PCA space.

usage: python bench/bench_embed.py [--run RUNS/cls] [--sample RUNS/sample]
(the runs of ../shared/acceptance/training.sh; RUNS defaults to /tmp/acceptance-runs)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def knn(points: np.ndarray, labels: np.ndarray, k: int = 5) -> float:
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, 1)[:, :k]
    return float((np.array([np.bincount(labels[r]).argmax() for r in nn]) == labels).mean())


def one(run: str, sample: str, method: str) -> dict:
    from explorer.coco import open_index
    from explorer.coco.dataset import Dataset
    from explorer.inference import embeddings
    from explorer.models import PUBLISHED, load_model

    index = open_index(Path(sample) / "annotations/instances_val2017.json")
    model = load_model(run, PUBLISHED, "cpu", dataset_categories=index.categories)
    features = embeddings.feature_model(model)
    items = embeddings.items_for_crops(index, np.arange(index.num_images))
    got = {
        it.annotation_id: out
        for it, out, _ in embeddings.predict(
            features, Dataset(index, Path(sample) / "val2017"), items
        )
    }
    ids = [it.annotation_id for it in items]
    x = np.stack([got[a] for a in ids])
    row = {int(a): r for r, a in enumerate(index.annotations["id"])}
    y = np.array([int(index.annotations["category_id"][row[a]]) for a in ids])
    t = time.perf_counter()
    vectors = embeddings._reduced(x)
    xy = embeddings.project(vectors, method)
    secs = time.perf_counter() - t
    return {
        "method": method,
        "objects": len(ids),
        "seconds": round(secs, 2),
        "knn5_map": round(knn(xy, y), 3),
        "knn5_pca50": round(knn(vectors, y), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="/tmp/acceptance-runs/cls")
    p.add_argument("--sample", default="/tmp/acceptance-runs/sample")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.run, args.sample, args.one)))
        return
    for method in ("pca", "tsne", "umap"):  # each in a fresh process: compile time counts
        out = subprocess.run(
            [sys.executable, __file__, "--run", args.run, "--sample", args.sample, "--one", method],
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
