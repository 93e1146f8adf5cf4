"""Predictions with a cache, and their products: tables, COCO results, evaluations.

The cache (``<cache>/predictions/<key>.sqlite``) is keyed by the dataset (annotation
fingerprint + image folder), the model name, a fingerprint of its weights and its preprocessing:
asking again for a prediction it has never runs the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from explorer.coco import masks as coco_masks
from explorer.coco.index import CocoIndex
from explorer.coco.labels import VOC_COCO_NAMES, VOC_NAMES, dataset_label_map
from explorer.inference.metrics import confusion_matrix, segmentation_scores
from explorer.inference.runner import Item, items_for_crops, items_for_images, run
from explorer.models.weights import LoadedModel
from explorer.paths import cache_dir

TOP_K = 10


class PredictionStore:
    """A key -> bytes store in one SQLite file (safe across threads and processes)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS p (k TEXT PRIMARY KEY, v BLOB)")

    @contextlib.contextmanager
    def _connect(self):
        """A connection that commits on success and is closed after the ``with`` block."""
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            yield db

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        with self._lock, self._connect() as db:
            for k in range(0, len(keys), 500):
                part = keys[k : k + 500]
                rows = db.execute(
                    f"SELECT k, v FROM p WHERE k IN ({','.join('?' * len(part))})", part
                )
                out.update(dict(rows.fetchall()))
        return out

    def put_many(self, items: dict[str, bytes]) -> None:
        if items:
            with self._lock, self._connect() as db:
                db.executemany("INSERT OR REPLACE INTO p VALUES (?, ?)", list(items.items()))


def store_for(model: LoadedModel, index: CocoIndex, images_dir: Path | None) -> PredictionStore:
    images = os.path.realpath(images_dir) if images_dir else ""
    key = "|".join(
        [
            index.fingerprint,
            images,
            model.name,
            model.encoder or "",
            model.weights_key,
            model.preprocess.key,
            str(len(model.class_names)),
        ]
    )
    return PredictionStore(
        cache_dir("predictions") / f"{hashlib.sha1(key.encode()).hexdigest()[:24]}.sqlite"
    )


def _encode(model: LoadedModel, output) -> bytes:
    if model.task == "classify":
        order = np.argsort(-output)[:TOP_K]
        return np.concatenate(
            [order.astype(np.float32), output[order].astype(np.float32)]
        ).tobytes()
    from PIL import Image

    labels, scores = output
    buf = io.BytesIO()
    Image.fromarray(labels, mode="L").save(buf, format="PNG", compress_level=1)
    head = json.dumps({str(k): v for k, v in scores.items()}).encode()
    return len(head).to_bytes(4, "little") + head + buf.getvalue()


def _decode(model: LoadedModel, blob: bytes):
    if model.task == "classify":
        v = np.frombuffer(blob, np.float32)
        return v[: len(v) // 2].astype(np.int64), v[len(v) // 2 :]
    from PIL import Image

    n = int.from_bytes(blob[:4], "little")
    scores = {int(k): v for k, v in json.loads(blob[4 : 4 + n]).items()}
    return np.asarray(Image.open(io.BytesIO(blob[4 + n :]))), scores


def predict(
    model: LoadedModel,
    index: CocoIndex,
    images_dir: Path | None,
    items: list[Item],
    batch_size: int | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[Item, object, str | None]]:
    """Like :func:`explorer.infer.run` but through the cache; outputs are decoded cache records:
    classifier ``(top label indices, their probabilities)``, segmenter ``(labels, scores)``."""
    store = store_for(model, index, images_dir)
    cached = store.get_many([it.key for it in items])
    todo = [it for it in items if it.key not in cached]
    done = len(items) - len(todo)
    for it in items:
        if it.key in cached:
            yield it, _decode(model, cached[it.key]), None
    if progress:
        progress(done, len(items))
    pending: dict[str, bytes] = {}
    if not todo:
        return
    try:
        for it, out, err in run(
            model,
            index,
            images_dir,
            todo,
            batch_size,
            workers,
            (lambda d, t: progress(done + d, len(items))) if progress else None,
            cancel,
        ):
            if out is None:
                yield it, None, err
                continue
            blob = _encode(model, out)
            pending[it.key] = blob
            if len(pending) >= 64:
                store.put_many(pending)
                pending = {}
            yield it, _decode(model, blob), None
    finally:
        store.put_many(pending)


# ---------------------------------------------------------------------------- classification


def classification_table(
    model: LoadedModel,
    index: CocoIndex,
    images_dir: Path | None,
    crops: bool,
    image_rows=None,
    **kw,
):
    """A pandas DataFrame, one row per image (or per non-crowd annotation with ``crops``).

    Columns: image_id, [annotation_id, true_category_id, true_category], top1..top5 label and
    probability, label_index (top-1), mapped_category_id / mapped_category (the top-1 label in the
    dataset's categories; empty when there is no counterpart), model, weights, untrained, error.
    """
    import pandas as pd

    rows = np.arange(index.num_images) if image_rows is None else np.asarray(image_rows)
    items = items_for_crops(index, rows) if crops else items_for_images(index, rows)
    mapping = dataset_label_map(model.label_space, model.class_names, index.categories)
    names = {c["id"]: c["name"] for c in index.categories}
    ann_row = (
        {
            int(index.annotations["id"][a]): int(a)
            for r in rows
            for a in index.annotation_rows(int(r))
        }
        if crops
        else {}
    )  # only the chosen images' annotations, not a map of the whole dataset
    records = []
    for it, out, err in predict(model, index, images_dir, items, **kw):
        rec = {"image_id": int(index.images["id"][it.image_row])}
        if crops:
            a = ann_row[int(it.key.split(":")[1])]
            cat = int(index.annotations["category_id"][a])
            rec.update(
                annotation_id=int(index.annotations["id"][a]),
                true_category_id=cat,
                true_category=names[cat],
            )
        if out is not None:
            top, prob = out
            for k in range(5):
                rec[f"top{k + 1}"] = model.class_names[top[k]] if k < len(top) else ""
                rec[f"top{k + 1}_prob"] = float(prob[k]) if k < len(prob) else 0.0
            mapped = mapping[int(top[0])]
            rec.update(
                label_index=int(top[0]),
                mapped_category_id=mapped if mapped is not None else -1,
                mapped_category=names.get(mapped, "") if mapped is not None else "",
            )
        rec.update(
            model=model.name,
            weights=model.weights_label,
            untrained=model.untrained,
            error=err or "",
        )
        records.append(rec)
    return pd.DataFrame.from_records(records)


def classification_scores(model: LoadedModel, table, categories: list[dict]) -> dict:
    """Top-1 / top-5 accuracy of crops against their true category, over the objects whose
    category the model can name (the rest are ``not_comparable``, never counted wrong)."""
    mapping = dataset_label_map(model.label_space, model.class_names, categories)
    reachable = {m for m in mapping if m is not None}
    label_of = {n: i for i, n in enumerate(model.class_names)}
    ok = table[table["error"] == ""]
    comparable = ok[ok["true_category_id"].isin(reachable)]
    top1 = (comparable["mapped_category_id"] == comparable["true_category_id"]).sum()
    top5 = 0
    for _, r in comparable.iterrows():
        hits = {mapping[label_of[r[f"top{k}"]]] for k in range(1, 6) if r[f"top{k}"] in label_of}
        top5 += r["true_category_id"] in hits
    n = len(comparable)
    return {
        "top1": float(top1 / n) if n else float("nan"),
        "top5": float(top5 / n) if n else float("nan"),
        "objects": int(n),
        "not_comparable": int(len(ok) - n),
        "unreadable": int(len(table) - len(ok)),
    }


# ---------------------------------------------------------------------------- segmentation


def coco_results(
    model: LoadedModel, index: CocoIndex, image_row: int, labels: np.ndarray, scores: dict
) -> list:
    """COCO results entries (``pycocotools.COCO.loadRes`` format) for one image: one per predicted
    label that maps to a dataset category, mask as compressed RLE at the original size."""
    from pycocotools import mask as mask_utils

    mapping = dataset_label_map(model.label_space, model.class_names, index.categories)
    image_id = int(index.images["id"][image_row])
    out = []
    for label in np.unique(labels).tolist():
        cat = mapping[label] if label < len(mapping) else None
        if cat is None:
            continue
        rle = mask_utils.encode(np.asfortranarray((labels == label).astype(np.uint8)))
        out.append(
            {
                "image_id": image_id,
                "category_id": int(cat),
                "segmentation": {
                    "size": [int(v) for v in rle["size"]],
                    "counts": rle["counts"].decode(),
                },
                "score": round(float(scores.get(label, 0.0)), 5),
            }
        )
    return out


def eval_space(model: LoadedModel, index: CocoIndex, labels: str | None = None):
    """How predictions meet the truth: ``(space, to_eval, n, names)``.

    ``space`` is ``voc`` (the 21 VOC labels, as torchvision's reference: other categories
    dropped, overlaps ignored) or ``coco`` (the dataset's category ids, 0 = background);
    ``to_eval[label]`` is a model label's value in that space (unmappable labels become 0);
    ``names[v]`` names value ``v`` (None where no category has it).
    """
    space = labels or ("voc" if model.label_space == "voc" else "coco")
    to_eval = np.zeros(256, np.int64)
    mapping = dataset_label_map(model.label_space, model.class_names, index.categories)
    if space == "voc":
        if model.label_space == "voc":
            to_eval[:21] = np.arange(21)
        else:  # a dataset model: its labels -> dataset categories -> VOC labels of the same name
            names_by_id = {c["id"]: c["name"] for c in index.categories}
            for i, cid in enumerate(mapping):
                name = names_by_id.get(cid)
                to_eval[i] = VOC_COCO_NAMES.index(name) + 1 if name in VOC_COCO_NAMES else 0
        return space, to_eval, 21, list(VOC_NAMES)
    for i, cid in enumerate(mapping):
        to_eval[i] = cid if cid is not None else 0
    n = max([c["id"] for c in index.categories], default=0) + 1
    names: list[str | None] = [None] * n
    names[0] = "background"
    for c in index.categories:
        names[c["id"]] = c["name"]
    return space, to_eval, n, names


def evaluate_segmentation(
    model: LoadedModel,
    index: CocoIndex,
    images_dir: Path | None,
    image_rows,
    labels: str | None = None,
    **kw,
) -> dict:
    """Pixel accuracy, mean IoU, per-class IoU and the confusion matrix over ``image_rows``
    (see :func:`eval_space`); predictions are compared at the original image size."""
    space, to_eval, n, names = eval_space(model, index, labels)
    conf = np.zeros((n, n), np.int64)
    count = 0
    for it, out, _err in predict(
        model, index, images_dir, items_for_images(index, image_rows), **kw
    ):
        if out is None:
            continue
        target, _ = coco_masks.semantic_mask(index, it.image_row, space)
        conf += confusion_matrix(target, to_eval[out[0]], n)
        count += 1
    s = segmentation_scores(conf)
    present = [v for v in range(n) if names[v] is not None]
    return {
        "pixel_acc": s["pixel_acc"],
        "miou": s["miou"],
        "per_class_iou": {names[v]: _num(s["per_class_iou"][v]) for v in present},
        "images": count,
        "labels": space,
        "model": model.name,
        "weights": model.weights_label,
        "untrained": model.untrained,
        "classes": [names[v] for v in present],
        "confusion": conf[np.ix_(present, present)].tolist(),
    }


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)
