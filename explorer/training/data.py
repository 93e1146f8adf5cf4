"""Training data from a COCO index: object crops (classify) and images with semantic masks
(segment).

Small datasets (the embedded sample, a few thousand objects) are decoded once into uint8
tensors in memory, then augmented on the fly with tensor ops: on two CPU cores, decoding JPEGs
every epoch would cost more than the model. The decoding itself runs in DataLoader workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from explorer.coco import masks as coco_masks
from explorer.coco.dataset import Dataset
from explorer.coco.images import crop_box, load_rgb, resolve_image_path
from explorer.coco.index import CocoIndex
from explorer.errors import ExplorerError
from explorer.inference.options import RunOptions
from explorer.training.settings import TrainSettings
from explorer.training.tasks import Split
from explorer.types import IGNORE_LABEL


@dataclass
class Tensors:
    """Decoded examples: ``images`` uint8 (N, 3, S, S); ``targets`` class rows (N,) or masks
    (N, S, S)."""

    images: torch.Tensor
    targets: torch.Tensor
    skipped: list[str]


def crop_rows(index: CocoIndex, min_area: float = 64.0) -> np.ndarray:
    """Annotation rows used as classification examples: non-crowd, area >= ``min_area``."""
    a = index.annotations
    return np.flatnonzero(~a["iscrowd"] & (a["area"] >= min_area))


class _CropItems(torch.utils.data.Dataset):
    """One object crop, shorter side resized to ``size`` then centre-cropped square."""

    def __init__(self, paths, sizes, boxes, size: int):
        self.paths, self.sizes, self.boxes, self.size = paths, sizes, boxes, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from torchvision.transforms import functional as F

        try:
            rgb = load_rgb(self.paths[i], self.sizes[i])
        except ExplorerError as e:
            return None, str(e)
        w, h = self.sizes[i]
        x0, y0, x1, y1 = crop_box(self.boxes[i], w, h)
        x = torch.from_numpy(np.array(rgb[y0:y1, x0:x1])).permute(2, 0, 1)
        x = F.resize(x, [self.size], antialias=True)
        return F.center_crop(x, [self.size, self.size]), ""


class _SegItems(torch.utils.data.Dataset):
    """One image resized to ``size`` x ``size`` and its semantic mask (class indices,
    255 = ignore)."""

    def __init__(self, index: CocoIndex, rows, paths, size: int, lut: np.ndarray):
        self.index, self.rows, self.paths, self.size, self.lut = index, rows, paths, size, lut

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        from PIL import Image

        r = int(self.rows[i])
        w, h = int(self.index.images["width"][r]), int(self.index.images["height"][r])
        try:
            rgb = load_rgb(self.paths[i], (w, h))
        except ExplorerError as e:
            return None, None, str(e)
        target, _ = coco_masks.semantic_mask(self.index, r, "coco")
        img = Image.fromarray(rgb).resize((self.size, self.size), Image.Resampling.BILINEAR)
        mask = Image.fromarray(self.lut[target]).resize(
            (self.size, self.size), Image.Resampling.NEAREST
        )
        return (
            torch.from_numpy(np.array(img)).permute(2, 0, 1),
            torch.from_numpy(np.array(mask)),
            "",
        )


def train_and_val(cfg: TrainSettings) -> tuple[Split, Split]:
    """A run's training and validation images: two files, or a seeded split of one (the
    ``val_fraction`` of its images, at least one)."""
    train = Dataset.open(cfg.coco, cfg.images)
    if cfg.val_coco:
        val = Dataset.open(cfg.val_coco, cfg.val_images or cfg.images)
        return Split(train, np.arange(train.index.num_images)), Split(
            val, np.arange(val.index.num_images)
        )
    order = np.random.default_rng(cfg.seed).permutation(train.index.num_images)
    n_val = max(1, int(round(cfg.val_fraction * len(order))))
    return Split(train, np.sort(order[n_val:])), Split(train, np.sort(order[:n_val]))


def _paths(split: Split, image_rows) -> list[str]:
    """The files of some of the split's images (a path leaving the folder raises)."""
    names = split.dataset.index.images["file_name"]
    return [str(resolve_image_path(split.images, str(names[r]))) for r in image_rows]


def _gather(dataset, workers: int, progress=None) -> list:
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=workers if len(dataset) > 32 else 0
    )
    out = []
    for i, item in enumerate(loader):
        out.append(item)
        if progress and i % 50 == 0:
            progress(i, len(dataset))
    return out


def load_crops(
    split: Split, category_ids: list[int], size: int, min_area: float, options: RunOptions
) -> Tensors:
    """The classification crops of the split's images (objects of at least ``min_area``), as
    uint8 (N, 3, size, size) and class indices, decoded by ``options.workers`` processes."""
    index = split.dataset.index
    rows = crop_rows(index, min_area)
    a = index.annotations
    rows = rows[np.isin(a["image_row"][rows], split.rows)]
    cls_of = {c: i for i, c in enumerate(category_ids)}
    rows = np.array([r for r in rows if int(a["category_id"][r]) in cls_of], dtype=np.int64)
    img_rows = a["image_row"][rows]
    paths = _paths(split, img_rows)
    sizes = [(int(index.images["width"][r]), int(index.images["height"][r])) for r in img_rows]
    items = _gather(
        _CropItems(paths, sizes, [tuple(b) for b in a["bbox"][rows].tolist()], size),
        options.workers,
        options.progress,
    )
    keep = [i for i, (x, _) in enumerate(items) if x is not None]
    if not keep:
        raise ExplorerError(f"{index.path}: no readable object crops to train on")
    return Tensors(
        torch.stack([items[i][0] for i in keep]),
        torch.tensor([cls_of[int(a["category_id"][rows[i]])] for i in keep]),
        [items[i][1] for i in range(len(items)) if items[i][0] is None],
    )


def class_lut(category_ids: list[int]) -> np.ndarray:
    """COCO-label semantic mask value -> class index (0 background, 1.. categories, 255 ignore)."""
    lut = np.full(256, IGNORE_LABEL, np.uint8)
    lut[0] = 0
    for i, c in enumerate(category_ids, 1):
        if 0 < c < IGNORE_LABEL:  # a category id equal to the ignore value cannot be a mask value
            lut[c] = i
    return lut


def load_segmentation(
    split: Split, category_ids: list[int], size: int, options: RunOptions
) -> Tensors:
    """The split's images resized to ``size`` x ``size`` with their masks in class indices."""
    index, rows = split.dataset.index, np.asarray(split.rows)
    items = _gather(
        _SegItems(index, rows, _paths(split, rows), size, class_lut(category_ids)),
        options.workers,
        options.progress,
    )
    keep = [i for i, it in enumerate(items) if it[0] is not None]
    if not keep:
        raise ExplorerError(f"{index.path}: no readable images to train on")
    return Tensors(
        torch.stack([items[i][0] for i in keep]),
        torch.stack([items[i][1] for i in keep]),
        [items[i][2] for i in range(len(items)) if items[i][0] is None],
    )


def augment_crops(
    x: torch.Tensor, out: int, generator: torch.Generator, min_scale: float = 0.7
) -> torch.Tensor:
    """Random resized crop (a square of 70-100% of the side, resized to ``out``) from a batch of
    uint8 squares, random flip, brightness/contrast jitter; returns float in [0, 1]."""
    from torchvision.ops import roi_align

    n, _, s, _ = x.shape
    sides = (s * (min_scale + (1 - min_scale) * torch.rand(n, generator=generator))).clamp(
        min=out // 2
    )
    x0 = (s - sides) * torch.rand(n, generator=generator)
    y0 = (s - sides) * torch.rand(n, generator=generator)
    boxes = torch.stack([torch.arange(n, dtype=x0.dtype), x0, y0, x0 + sides, y0 + sides], 1)
    # one batched crop-and-resize; adaptive sampling averages every source pixel of a bin (the
    # antialiasing a per-image interpolate needed), far cheaper than a loop over the batch
    crops = roi_align(x.float(), boxes, (out, out), sampling_ratio=-1, aligned=True) / 255
    flip = torch.rand(n, generator=generator) < 0.5
    crops[flip] = crops[flip].flip(-1)
    return _jitter(crops, generator)


def augment_segmentation(x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
    """Random flip and scale-crop (zoom in up to 1.5x) of images and masks alike; images as
    float."""
    import torch.nn.functional as F

    n, _, s, _ = x.shape
    x = x.float() / 255
    flip = torch.rand(n, generator=generator) < 0.5
    x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
    scale = 1 + 0.5 * torch.rand(n, generator=generator)
    xs, ys = [], []
    for i in range(n):
        c = int(s / scale[i])
        ox, oy = (int(torch.randint(0, s - c + 1, (1,), generator=generator)) for _ in range(2))
        xs.append(
            F.interpolate(
                x[i : i + 1, :, oy : oy + c, ox : ox + c],
                size=(s, s),
                mode="bilinear",
                align_corners=False,
            )[0]
        )
        ys.append(
            F.interpolate(
                y[i : i + 1, None, oy : oy + c, ox : ox + c].float(), size=(s, s), mode="nearest"
            )[0, 0]
        )
    return _jitter(torch.stack(xs), generator), torch.stack(ys).long()


def _jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = len(x)
    bright = 1 + 0.2 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    contrast = 1 + 0.2 * (torch.rand(n, 1, 1, 1, generator=generator) - 0.5)
    mean = x.mean((1, 2, 3), keepdim=True)
    return ((x - mean) * contrast + mean * bright).clamp(0, 1)


def normalise(x: torch.Tensor) -> torch.Tensor:
    from explorer.models.preprocess import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std
