"""Export semantic masks as single-channel 8-bit PNGs (the layout segmentation trainers read)."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from explorer.coco import masks
from explorer.coco.images import resolve_image_path
from explorer.coco.index import CocoIndex
from explorer.errors import DatasetError, UnsafePathError


def select_image_rows(index: CocoIndex, image_ids: list[int] | None) -> np.ndarray:
    """Rows of ``image_ids`` (all images when None). Raises DatasetError naming unknown ids."""
    if image_ids is None:
        return np.arange(index.num_images)
    ids = np.asarray(image_ids, dtype=np.int64)
    found = np.isin(ids, index.images["id"])
    if not found.all():
        missing = ", ".join(str(i) for i in ids[~found][:10])
        raise DatasetError(f"{index.path}: no image with id {missing}")
    return np.array([index.image_row(i) for i in ids], dtype=np.int64)


def export_semantic_masks(
    index: CocoIndex,
    out_dir: Path,
    labels: str = "coco",
    image_ids: list[int] | None = None,
    progress: bool = True,
) -> dict:
    """Write ``<out_dir>/<file_name stem>.png`` for each image: its semantic mask.

    Args:
        index: the dataset.
        out_dir: output folder (created).
        labels: ``coco`` (category ids) or ``voc`` (21 Pascal-VOC labels); 255 = overlap.
        image_ids: only these images (default: all).
        progress: show a tqdm bar on stderr.

    Returns:
        ``{"written": n, "skipped": [{"id", "error"}, ...]}`` where ``skipped`` lists the
        annotations (or images) left out because they could not be decoded or named safely.
    """
    from PIL import Image
    from tqdm import tqdm

    masks.semantic_labels(index, np.zeros(0, np.int64), labels)  # validate ``labels`` up front
    rows = select_image_rows(index, image_ids)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, skipped = 0, []
    for row in tqdm(rows.tolist(), desc="masks", unit="img", disable=not progress, leave=False):
        name = str(index.images["file_name"][row])
        try:
            target = resolve_image_path(out_dir, str(PurePosixPath(name).with_suffix(".png")))
        except (UnsafePathError, ValueError) as e:
            skipped.append({"id": int(index.images["id"][row]), "error": str(e)})
            continue
        mask, bad = masks.semantic_mask(index, row, labels)
        skipped.extend(bad)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask, mode="L").save(target, compress_level=1)
        written += 1
    return {"written": written, "skipped": skipped}
