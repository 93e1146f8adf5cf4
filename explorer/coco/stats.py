"""Dataset statistics computed on the columnar index (no per-annotation Python objects)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.coco import health
from explorer.coco.dataset import Dataset
from explorer.coco.index import CocoIndex
from explorer.types import SIZE_RANGES


def category_counts(index: CocoIndex, ann_rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Instances and distinct images per category row (crowd included).

    Args:
        index: the dataset.
        ann_rows: restrict to these annotation rows (default: all).

    Returns:
        ``{"instances": int array, "images": int array}``, one entry per category row.
    """
    n_cat = len(index.categories)
    cat = index.annotations["category_row"]
    img = index.annotations["image_row"]
    if ann_rows is not None:
        cat, img = cat[ann_rows], img[ann_rows]
    instances = np.bincount(cat, minlength=n_cat)
    pair = img.astype(np.int64) * n_cat + cat
    if index.num_images * n_cat <= 64_000_000:  # a presence bitmap is ~10x faster than unique
        present = np.zeros(index.num_images * n_cat, bool)
        present[pair] = True
        images = present.reshape(index.num_images, n_cat).sum(0)
    else:
        images = np.bincount(np.unique(pair) % n_cat, minlength=n_cat)
    return {"instances": instances, "images": images}


def summary(dataset: Dataset) -> dict:
    """The ``stats --json`` object: totals, per-category counts and health findings (with
    the image files missing from the dataset's folder, when it has one)."""
    index, images_dir = dataset.index, dataset.images
    counts = category_counts(index)
    categories = [
        {**c, "instances": int(counts["instances"][i]), "images": int(counts["images"][i])}
        for i, c in enumerate(index.categories)
    ]
    findings = list(index.health)
    if images_dir is not None:
        missing = health.missing_files(index.images["file_name"], index.images["id"], images_dir)
        if missing:
            findings.append(missing)
    return {
        "file": str(index.path),
        "images": index.num_images,
        "annotations": index.num_annotations,
        "crowd": int(np.count_nonzero(index.annotations["iscrowd"])),
        "categories": categories,
        "health": findings,
        "load_seconds": round(index.load_seconds, 3),
        "from_cache": index.from_cache,
    }


def format_summary(s: dict) -> str:
    """A human-readable version of :func:`summary`."""
    supers = sorted({c["supercategory"] for c in s["categories"]})
    lines = [
        f"{s['file']}",
        f"  {s['images']:,} images, {s['annotations']:,} annotations ({s['crowd']:,} crowd), "
        f"{len(s['categories'])} categories in {len(supers)} supercategories",
        f"  opened in {s['load_seconds']:.2f} s ({'cache' if s['from_cache'] else 'parsed'})",
        "",
        f"  {'id':>4}  {'category':<22}{'supercategory':<16}{'instances':>10}{'images':>8}",
    ]
    for c in sorted(s["categories"], key=lambda c: -c["instances"]):
        lines.append(
            f"  {c['id']:>4}  {c['name'][:21]:<22}{c['supercategory'][:15]:<16}"
            f"{c['instances']:>10,}{c['images']:>8,}"
        )
    lines.append("")
    if not s["health"]:
        lines.append("  health: no findings")
    for f in s["health"]:
        ex = ", ".join(str(e) for e in f["examples"][:3])
        lines.append(f"  [{f['severity']}] {f['count']:,} {f['message']} (e.g. {ex})")
    return "\n".join(lines)


def annotation_rows_of_images(index: CocoIndex, image_rows: np.ndarray | None) -> np.ndarray | None:
    """The annotation rows of ``image_rows`` (None stays None: all annotations)."""
    if image_rows is None:
        return None
    starts = index.images["ann_start"]
    if not len(image_rows):
        return np.zeros(0, np.int64)
    lengths = starts[image_rows + 1] - starts[image_rows]
    offsets = np.repeat(starts[image_rows] - np.cumsum(lengths) + lengths, lengths)
    return index.annotations["by_image"][np.arange(lengths.sum()) + offsets]


def size_classes(index: CocoIndex, ann_rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """COCO small / medium / large annotation counts per category row (by area)."""
    area = index.annotations["area"]
    cat = index.annotations["category_row"]
    if ann_rows is not None:
        area, cat = area[ann_rows], cat[ann_rows]
    n = len(index.categories)
    return {
        k: np.bincount(
            cat[(area >= lo) & (area < hi)] if k != "small" else cat[area < hi], minlength=n
        )
        for k, (lo, hi) in SIZE_RANGES.items()
    }


def instances_per_image(index: CocoIndex, image_rows: np.ndarray | None = None) -> np.ndarray:
    per_image = np.diff(index.images["ann_start"])
    return per_image if image_rows is None else per_image[image_rows]


def cooccurrence(index: CocoIndex, image_rows: np.ndarray | None = None) -> np.ndarray:
    """``C[i, j]``: images containing categories i and j (diagonal: images containing i)."""
    n_cat = len(index.categories)
    ann_rows = annotation_rows_of_images(index, image_rows)
    img = (
        index.annotations["image_row"]
        if ann_rows is None
        else index.annotations["image_row"][ann_rows]
    )
    cat = (
        index.annotations["category_row"]
        if ann_rows is None
        else index.annotations["category_row"][ann_rows]
    )
    present = np.zeros((index.num_images, n_cat), np.float32)
    present[img, cat] = 1.0
    return (present.T @ present).round().astype(np.int64)


def box_geometry(index: CocoIndex, ann_rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per annotation: aspect ratio w/h, box centre in normalised image coordinates, area."""
    anns = index.annotations
    rows = slice(None) if ann_rows is None else ann_rows
    x, y, w, h = np.asarray(anns["bbox"][rows]).T
    img = anns["image_row"][rows]
    iw = index.images["width"][img].astype(np.float64)
    ih = index.images["height"][img].astype(np.float64)
    ok = (w > 0) & (h > 0)
    return {
        "aspect": w[ok] / h[ok],
        "cx": ((x + w / 2) / iw)[ok],
        "cy": ((y + h / 2) / ih)[ok],
        "area": np.asarray(anns["area"][rows]),
    }


@dataclass(frozen=True)
class Distributions:
    """Everything the Distributions page draws, for all images or some image rows."""

    images: int
    annotations: int
    counts: dict[str, np.ndarray]  # category_counts
    sizes: dict[str, np.ndarray]  # size_classes
    geometry: dict[str, np.ndarray]  # box_geometry
    per_image: np.ndarray  # instances_per_image
    cooccurrence: np.ndarray
    widths: np.ndarray
    heights: np.ndarray


def distributions(index: CocoIndex, image_rows: np.ndarray | None = None) -> Distributions:
    """The statistics of the Distributions page (computed once per dataset and filter there)."""
    ann_rows = annotation_rows_of_images(index, image_rows)
    rows = slice(None) if image_rows is None else image_rows
    return Distributions(
        images=index.num_images if image_rows is None else len(image_rows),
        annotations=index.num_annotations if ann_rows is None else len(ann_rows),
        counts=category_counts(index, ann_rows),
        sizes=size_classes(index, ann_rows),
        geometry=box_geometry(index, ann_rows),
        per_image=instances_per_image(index, image_rows),
        cooccurrence=cooccurrence(index, image_rows),
        widths=index.images["width"][rows],
        heights=index.images["height"][rows],
    )
