"""Benchmark: finding planted annotation mistakes, explorer's two models versus cleanlab.

Noise is planted in the sample's val split as ``../shared/acceptance/mistakes.sh`` does (seeded):
``--flip`` of the non-crowd objects get another category, ``--delete`` of the others are
removed, and (``--shift``) a share of the rest have their polygon moved by half its box. Then, on
the same classifier's probabilities (the prediction cache: one model run for all methods):

* explorer: ``find_mistakes`` with both models, ranked by its score (one table per kind);
* classifier alone / segmenter alone: the same evidence columns, one model's doubt each;
* cleanlab: ``find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence")``
  on the classifier's probabilities (held-out: the classifier never saw the val split).

precision@k: of the k best-ranked rows (k = objects planted), the share that are planted;
recall@2k: of the planted, the share found in the 2k best. A flip is found when its annotation
is ranked, and fixed when the suggestion is the original category; a deletion is found by a
``missing`` row on its image with box IoU >= 0.5; a shift by a ``bad_mask`` row of it.

usage: python bench/bench_mistakes.py --runs /tmp/acceptance-runs [--seeds 7 8 9] [--shift 0.06]
(the runs of ../shared/acceptance/training.sh: RUNS/cls, RUNS/seg and RUNS/sample)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plant(ann: Path, out: Path, seed: int, flip: float, delete: float, shift: float) -> dict:
    """The noisy file (as mistakes.sh writes it, plus shifted polygons) and what was planted."""
    d = json.loads(ann.read_text())
    rng = random.Random(seed)
    cats = [c["id"] for c in d["categories"]]
    objs = [a for a in d["annotations"] if not a["iscrowd"]]
    rng.shuffle(objs)
    k, kd = round(flip * len(objs)), round(delete * len(objs))
    flipped = {a["id"]: a["category_id"] for a in objs[:k]}
    for a in objs[:k]:
        a["category_id"] = rng.choice([c for c in cats if c != a["category_id"]])
    deleted = objs[k : k + kd]
    gone = {a["id"] for a in deleted}
    polys = [a for a in objs[k + kd :] if isinstance(a.get("segmentation"), list)]
    shifted = polys[: round(shift * len(objs))]
    for a in shifted:
        dx = 0.5 * a["bbox"][2]
        a["segmentation"] = [
            [v + dx if i % 2 == 0 else v for i, v in enumerate(p)] for p in a["segmentation"]
        ]
        a["bbox"] = [a["bbox"][0] + dx, *a["bbox"][1:]]
    d["annotations"] = [a for a in d["annotations"] if a["id"] not in gone]
    out.write_text(json.dumps(d))
    return {
        "flipped": flipped,
        "deleted": [(a["image_id"], a["bbox"]) for a in deleted],
        "shifted": {a["id"] for a in shifted},
    }


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    u = aw * ah + bw * bh - iw * ih
    return iw * ih / u if u > 0 else 0.0


def ranked_scores(ranked_ids: list[int], planted: set[int]) -> tuple[float, float]:
    k = len(planted)
    return (
        len(set(ranked_ids[:k]) & planted) / max(k, 1),
        len(set(ranked_ids[: 2 * k]) & planted) / max(k, 1),
    )


def missing_scores(frame, deleted: list) -> tuple[float, float]:
    rows = frame[frame["kind"] == "missing"].sort_values("score", ascending=False)
    k = len(deleted)

    def found(n: int) -> int:
        left, hits = list(deleted), 0
        for _, r in rows.head(n).iterrows():
            for i, (img, box) in enumerate(left):
                if img == int(r["image_id"]) and iou(list(r["bbox"]), box) >= 0.5:
                    hits += 1
                    left.pop(i)
                    break
        return hits

    return found(k) / max(k, 1), found(2 * k) / max(k, 1)


def cleanlab_ranking(classifier, index, images: Path, annotation_ids: list[int]) -> list[int]:
    """cleanlab's ranked issues on the classifier's (cached) crop probabilities."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from explorer.coco.dataset import Dataset
    from explorer.inference.cache import predict
    from explorer.inference.mistakes import _Space
    from explorer.inference.options import RunOptions
    from explorer.inference.runner import items_for_crops

    space = _Space.of(classifier, classifier, index)
    items = items_for_crops(index, np.arange(index.num_images))
    probs = {
        it.annotation_id: space.probabilities(out)
        for it, out, _ in predict(classifier, Dataset(index, images), items, RunOptions(workers=0))
    }
    anns = index.annotations
    row_of = {int(i): r for r, i in enumerate(anns["id"])}
    pos = {int(c): i for i, c in enumerate(space.ids)}
    ids = [a for a in annotation_ids if probs.get(a) is not None]
    p = np.stack([probs[a] for a in ids]) + 1e-6
    p /= p.sum(1, keepdims=True)
    labels = np.array([pos[int(anns["category_id"][row_of[a]])] for a in ids])
    issues = find_label_issues(labels, p, return_indices_ranked_by="self_confidence")
    quality = get_label_quality_scores(labels, p, method="self_confidence")
    fixes = {
        ids[i]: int(space.ids[np.where(np.arange(len(pos)) == labels[i], -1, p[i]).argmax()])
        for i in range(len(ids))
    }
    return [ids[i] for i in issues], [ids[i] for i in np.argsort(quality, kind="stable")], fixes


def one_seed(args, seed: int) -> dict:
    from explorer.coco import open_index
    from explorer.coco.dataset import Dataset
    from explorer.inference import mistakes
    from explorer.inference.pair import ModelPair
    from explorer.models import PUBLISHED, load_model

    runs, tmp = Path(args.runs), Path(args.tmp)
    sample = runs / "sample"
    noisy = tmp / f"noisy-{seed}.json"
    planted = plant(
        sample / "annotations/instances_val2017.json",
        noisy,
        seed,
        args.flip,
        args.delete,
        args.shift,
    )
    images = sample / "val2017"
    index = open_index(noisy, images=images)
    classifier = load_model(
        args.classifier or str(runs / "cls"),
        PUBLISHED,
        args.device,
        dataset_categories=index.categories,
    )
    segmenter = load_model(
        args.segmenter or str(runs / "seg"),
        PUBLISHED,
        args.device,
        dataset_categories=index.categories,
    )
    everything = mistakes.Settings(min_wrong_label=0.0, min_bad_mask=0.0, min_missing=0.0)
    result = mistakes.find_mistakes(
        ModelPair(classifier, segmenter), Dataset(index, images), settings=everything
    )
    frame = mistakes.to_frame(result.rows)
    default = mistakes.Settings()
    flipped = {int(k): v for k, v in planted["flipped"].items()}
    wrong = frame[frame["kind"] == "wrong_label"]
    out: dict = {
        "seed": seed,
        "planted": {
            "flipped": len(flipped),
            "deleted": len(planted["deleted"]),
            "shifted": len(planted["shifted"]),
        },
    }

    def by(col_score):
        order = wrong.assign(s=col_score).sort_values("s", ascending=False)
        ids = [int(a) for a in order["annotation_id"]]
        fixes = dict(zip(ids, (int(c) for c in order["category_id"]), strict=True))
        prec, rec = ranked_scores(ids, set(flipped))
        top = [a for a in ids[: len(flipped)] if a in flipped]
        fix = np.mean([fixes[a] == flipped[a] for a in top]) if top else 0.0
        return {"precision_at_k": prec, "recall_at_2k": rec, "right_fix": float(fix)}

    out["wrong_label"] = {
        "both models (explorer)": by(wrong["score"]),
        "classifier alone": by(1 - wrong["classifier_annotated"].fillna(1)),
        "segmenter alone": by(1 - wrong["segmenter_annotated"].fillna(1)),
    }
    non_crowd = [
        int(i)
        for i, c in zip(index.annotations["id"], index.annotations["iscrowd"], strict=True)
        if not c
    ]
    issues, ranked, fixes = cleanlab_ranking(classifier, index, images, non_crowd)
    for name, ids in (
        ("cleanlab find_label_issues", issues),
        ("cleanlab label quality, all ranked", ranked),
    ):
        prec, rec = ranked_scores(ids, set(flipped))
        top = [a for a in ids[: len(flipped)] if a in flipped]
        out["wrong_label"][name] = {
            "precision_at_k": prec,
            "recall_at_2k": rec,
            "right_fix": float(np.mean([fixes[a] == flipped[a] for a in top])) if top else 0.0,
            "flagged": len(ids),
        }
    m_prec, m_rec = missing_scores(frame, planted["deleted"])
    out["missing"] = {"precision_at_k": m_prec, "recall_at_2k": m_rec}
    bad = frame[frame["kind"] == "bad_mask"].sort_values("score", ascending=False)
    if planted["shifted"]:
        b_prec, b_rec = ranked_scores([int(a) for a in bad["annotation_id"]], planted["shifted"])
        out["bad_mask"] = {"precision_at_k": b_prec, "recall_at_2k": b_rec}
    out["rows_at_default_thresholds"] = {
        k: int(sum((frame["kind"] == k) & (frame["score"] >= t)))
        for k, t in (
            ("wrong_label", default.min_wrong_label),
            ("missing", default.min_missing),
            ("bad_mask", default.min_bad_mask),
        )
    }
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="/tmp/acceptance-runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    p.add_argument("--flip", type=float, default=0.06)
    p.add_argument("--delete", type=float, default=0.06)
    p.add_argument("--shift", type=float, default=0.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--classifier", help="another classifier run (default RUNS/cls)")
    p.add_argument("--segmenter", help="another segmenter run (default RUNS/seg)")
    p.add_argument("--json", help="write the results here too")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = tmp
        os.environ.setdefault("EXPLORER_CACHE", str(Path(tmp) / "cache"))
        results = [one_seed(args, s) for s in args.seeds]
    print(
        f"# {platform.node()} {platform.processor() or platform.machine()}, "
        f"flip {args.flip} delete {args.delete} shift {args.shift}"
    )
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
