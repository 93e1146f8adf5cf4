"""Training data from a COCO index: object crops (classify) and images with semantic masks
(segment).

Small datasets (the embedded sample, a few thousand objects) are decoded once into uint8
tensors in memory, then augmented on the fly with tensor ops: on two CPU cores, decoding JPEGs
every epoch would cost more than the model. An example is decoded when a batch first asks for
it (:meth:`Tensors.load`), not all before the first step: the first epoch decodes as it goes,
so a run's first step (and its live curve) comes seconds after the start, not after the whole
set is read; the examples, their order and the results are those of decoding everything first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

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

T = TypeVar("T")
R = TypeVar("R")

Decoded = tuple[torch.Tensor | None, torch.Tensor | None, str]
"""One example as its source decodes it: ``(image, target, "")`` (the target None where the
index gives it), or ``(None, None, why it cannot be read)``."""


class _Source(Protocol):
    """Where a :class:`Tensors` decodes its examples from."""

    def decode(self, rows: Sequence[int], workers: int) -> list[Decoded]:
        """The examples ``rows``, in that order, decoded by ``workers`` threads."""
        ...


@dataclass(frozen=True)
class _Pending:
    """What a :class:`Tensors` still has to decode, and how."""

    source: _Source
    workers: int  # threads decoding a batch's examples (decoding and resizing release the GIL)
    nothing_readable: str  # the error when no example at all can be read


class Tensors:
    """Training examples: ``images`` uint8 (N, 3, S, S), ``targets`` class rows (N,) or masks
    (N, S, S). Rows hold their example once :meth:`load` has decoded it; ``skipped`` says why
    the unreadable ones found so far cannot be read."""

    def __init__(self, images: torch.Tensor, targets: torch.Tensor, pending: _Pending | None):
        self.images, self.targets = images, targets
        self.skipped: list[str] = []
        self._pending = pending
        self._loaded = torch.full((len(images),), pending is None)
        self._readable = torch.ones(len(images), dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, rows: torch.Tensor) -> torch.Tensor:
        """Decode the examples ``rows`` not decoded yet; returns the readable ones among
        ``rows`` (in order).

        Raises:
            ExplorerError: no example of the whole set can be read.
        """
        missing = torch.unique(rows[~self._loaded[rows]])
        if len(missing):
            self._decode(missing.tolist())
        readable = rows[self._readable[rows]]
        if not len(readable) and len(rows):
            self.load_all()  # raises when no example at all is readable
        return readable

    def load_all(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Decode every example not decoded yet, reporting ``progress(done, total)``."""
        missing = torch.nonzero(~self._loaded).flatten().tolist()
        chunk = 64
        for k in range(0, len(missing), chunk):
            if progress:
                progress(k, len(missing))
            self._decode(missing[k : k + chunk])
        if self._pending is not None and not self._readable.any():
            raise ExplorerError(self._pending.nothing_readable)

    def class_targets(self) -> torch.Tensor:
        """The targets of every readable example (decoding the masks not decoded yet)."""
        if self.targets.dim() > 1:  # masks come from the files
            self.load_all()
        return self.targets[self._readable]

    def _decode(self, rows: list[int]) -> None:
        assert self._pending is not None  # rows not loaded have a source
        decoded = self._pending.source.decode(rows, self._pending.workers)
        for r, (image, target, why) in zip(rows, decoded, strict=True):
            if image is None:
                self._readable[r] = False
                self.skipped.append(why)
                continue
            self.images[r] = image
            if target is not None:
                self.targets[r] = target
        self._loaded[rows] = True


def _in_threads(decode: Callable[[T], R], keys: Sequence[T], workers: int) -> list[R]:
    """``decode`` of each key, in order, by up to ``workers`` threads."""
    if workers < 2 or len(keys) < 2:
        return [decode(k) for k in keys]
    with ThreadPoolExecutor(min(workers, len(keys))) as pool:
        return list(pool.map(decode, keys))


def crop_rows(index: CocoIndex, min_area: float = 64.0) -> np.ndarray:
    """Annotation rows used as classification examples: non-crowd, area >= ``min_area``."""
    a = index.annotations
    return np.flatnonzero(~a["iscrowd"] & (a["area"] >= min_area))


class _CropItems:
    """Object crops, each its shorter side resized to ``size`` then centre-cropped square."""

    def __init__(self, paths, sizes, boxes, size: int):
        self.paths, self.sizes, self.boxes, self.size = paths, sizes, boxes, size

    def decode(self, rows: Sequence[int], workers: int) -> list[Decoded]:
        # each image once for all its crops asked for (an image holds several objects)
        by_image: dict[str, list[int]] = {}
        for r in rows:
            by_image.setdefault(self.paths[r], []).append(r)
        crops: dict[int, Decoded] = {}
        for done in _in_threads(lambda k: self._crops(by_image[k]), list(by_image), workers):
            crops.update(done)
        return [crops[r] for r in rows]

    def _crops(self, rows: list[int]) -> dict[int, Decoded]:
        from torchvision.transforms import functional as F

        first = rows[0]
        try:
            rgb = load_rgb(self.paths[first], self.sizes[first])
        except ExplorerError as e:
            return {r: (None, None, str(e)) for r in rows}
        w, h = self.sizes[first]
        out: dict[int, Decoded] = {}
        for r in rows:
            x0, y0, x1, y1 = crop_box(self.boxes[r], w, h)
            x = torch.from_numpy(np.array(rgb[y0:y1, x0:x1])).permute(2, 0, 1)
            x = F.resize(x, [self.size], antialias=True)
            out[r] = (F.center_crop(x, [self.size, self.size]), None, "")
        return out


class _SegItems:
    """Images resized to ``size`` x ``size`` and their semantic masks (class indices,
    255 = ignore)."""

    def __init__(self, index: CocoIndex, rows, paths, size: int, lut: np.ndarray):
        self.index, self.rows, self.paths, self.size, self.lut = index, rows, paths, size, lut

    def decode(self, rows: Sequence[int], workers: int) -> list[Decoded]:
        return _in_threads(self._one, rows, workers)

    def _one(self, i: int) -> Decoded:
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


def load_crops(
    split: Split, category_ids: list[int], size: int, min_area: float, options: RunOptions
) -> Tensors:
    """The classification crops of the split's images (objects of at least ``min_area``), as
    uint8 (N, 3, size, size) and class indices, each decoded when first asked for (by
    ``options.workers`` threads)."""
    index = split.dataset.index
    rows = crop_rows(index, min_area)
    a = index.annotations
    rows = rows[np.isin(a["image_row"][rows], split.rows)]
    cls_of = {c: i for i, c in enumerate(category_ids)}
    rows = np.array([r for r in rows if int(a["category_id"][r]) in cls_of], dtype=np.int64)
    img_rows = a["image_row"][rows]
    paths = _paths(split, img_rows)
    sizes = [(int(index.images["width"][r]), int(index.images["height"][r])) for r in img_rows]
    nothing = f"{index.path}: no readable object crops to train on"
    if not len(rows):
        raise ExplorerError(nothing)
    items = _CropItems(paths, sizes, [tuple(b) for b in a["bbox"][rows].tolist()], size)
    return Tensors(
        torch.empty((len(rows), 3, size, size), dtype=torch.uint8),
        torch.tensor([cls_of[int(a["category_id"][r])] for r in rows]),
        _Pending(items, options.workers, nothing),
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
    """The split's images resized to ``size`` x ``size`` with their masks in class indices,
    each decoded when first asked for (by ``options.workers`` threads)."""
    index, rows = split.dataset.index, np.asarray(split.rows)
    nothing = f"{index.path}: no readable images to train on"
    if not len(rows):
        raise ExplorerError(nothing)
    items = _SegItems(index, rows, _paths(split, rows), size, class_lut(category_ids))
    return Tensors(
        torch.empty((len(rows), 3, size, size), dtype=torch.uint8),
        torch.empty((len(rows), size, size), dtype=torch.uint8),
        _Pending(items, options.workers, nothing),
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
