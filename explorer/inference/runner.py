"""The batch runner: images (or object crops) -> model outputs, on the GPU when there is one.

Images are decoded and preprocessed in DataLoader workers (on CUDA, JPEG bytes are decoded on
the GPU instead), batched by identical input size so no padding changes a prediction, and run
under ``torch.inference_mode`` (bf16 autocast, channels_last, pinned memory on CUDA). A CUDA
out-of-memory halves the batch and retries. Progress is reported through a callback and a
``threading.Event`` cancels between batches. One process-wide lock serialises GPU work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from explorer.coco.images import load_rgb, resolve_image_path
from explorer.errors import ExplorerError

if TYPE_CHECKING:  # the runner itself needs no index (bench/bench_infer.py runs it on bare files)
    from explorer.coco.index import CocoIndex
    from explorer.models.weights import LoadedModel

GPU_LOCK = threading.Lock()
CROP_CONTEXT = 0.1  # a crop is the box grown by 10% of its size on each side


class Cancelled(ExplorerError):
    """The user stopped a run."""


@dataclass(frozen=True)
class Item:
    """One input: an image row, optionally a crop box (x, y, w, h) in image pixels."""

    image_row: int
    box: tuple[float, float, float, float] | None = None
    key: str = ""


def crop_box(
    box, width: int, height: int, context: float = CROP_CONTEXT
) -> tuple[int, int, int, int]:
    """A box grown by ``context`` on each side, clipped to the image, as integer (x0, y0, x1, y1)."""
    x, y, w, h = box
    x0, y0 = max(0, int(np.floor(x - context * w))), max(0, int(np.floor(y - context * h)))
    x1, y1 = (
        min(width, int(np.ceil(x + w + context * w))),
        min(height, int(np.ceil(y + h + context * h))),
    )
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


class _Inputs:
    """A map-style dataset of preprocessed inputs (picklable for DataLoader workers)."""

    def __init__(
        self,
        items: list[Item],
        paths: list[str],
        sizes: list[tuple[int, int]],
        preprocess,
        raw_bytes: bool = False,
    ):
        self.items, self.paths, self.sizes, self.preprocess, self.raw_bytes = (
            items,
            paths,
            sizes,
            preprocess,
            raw_bytes,
        )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import torch

        if self.raw_bytes:  # decoded on the GPU by the runner
            try:
                return torch.frombuffer(
                    bytearray(Path(self.paths[i]).read_bytes()), dtype=torch.uint8
                ), i
            except OSError as e:
                return f"{self.paths[i]}: cannot read ({e.strerror})", i
        w, h = self.sizes[i]
        try:
            rgb = load_rgb(self.paths[i], (w, h))
        except ExplorerError as e:
            return str(e), i
        if getattr(self.items[i], "box", None) is not None:
            x0, y0, x1, y1 = crop_box(self.items[i].box, w, h)
            rgb = rgb[y0:y1, x0:x1]
        x = torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)
        return self.preprocess(x), i


def _collate(batch):
    import torch

    good = [(x, i) for x, i in batch if not isinstance(x, str)]
    bad = [(x, i) for x, i in batch if isinstance(x, str)]
    if not good:
        return None, [], bad
    if good[0][0].dtype == torch.uint8 and good[0][0].dim() == 1:  # raw JPEG bytes
        return [x for x, _ in good], [i for _, i in good], bad
    return torch.stack([x for x, _ in good]), [i for _, i in good], bad


def _batches(sizes: list[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Indices grouped by identical input size, each group cut into batches (order kept within)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(sizes):
        groups.setdefault(s, []).append(i)
    return [g[k : k + batch_size] for g in groups.values() for k in range(0, len(g), batch_size)]


def items_for_images(index: CocoIndex, image_rows) -> list[Item]:
    return [Item(int(r), None, f"img:{int(index.images['id'][r])}") for r in image_rows]


def items_for_crops(index: CocoIndex, image_rows, include_crowd: bool = False) -> list[Item]:
    """One item per annotation (non-crowd unless asked) of the given images, in index order."""
    anns = index.annotations
    out = []
    for r in image_rows:
        for a in index.annotation_rows(int(r)).tolist():
            if include_crowd or not anns["iscrowd"][a]:
                out.append(
                    Item(
                        int(r),
                        tuple(float(v) for v in anns["bbox"][a]),
                        f"ann:{int(anns['id'][a])}",
                    )
                )
    return out


def run(
    model: LoadedModel,
    index: CocoIndex,
    images_dir: Path | None,
    items: list[Item],
    batch_size: int | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[Item, object, str | None]]:
    """Yield ``(item, output, error)`` for every item, in batches.

    ``output`` is, for a classifier, the probability vector (numpy float32); for a segmenter, a
    ``(labels uint8 HxW at the original image size, per-label mean probability dict)`` pair.
    ``error`` says why an item could not be read (its output is then None).

    Raises:
        Cancelled: ``cancel`` was set.
    """
    if images_dir is None:
        raise ExplorerError("no image folder: predictions need the images (--images DIR)")
    paths, sizes = [], []
    for it in items:
        try:
            paths.append(
                str(resolve_image_path(images_dir, str(index.images["file_name"][it.image_row])))
            )
        except ExplorerError as e:
            paths.append(e)
        sizes.append(
            (int(index.images["width"][it.image_row]), int(index.images["height"][it.image_row]))
        )
    yield from run_paths(model, items, paths, sizes, batch_size, workers, progress, cancel)


def run_paths(
    model: LoadedModel,
    items: list,
    paths: list,
    sizes: list[tuple[int, int]],
    batch_size: int | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[object, object, str | None]]:
    """:func:`run` on image files: ``paths[i]`` (or an exception saying why there is none) of
    annotated size ``sizes[i]`` = (width, height); ``items[i].box`` crops."""
    import torch

    batch_size = batch_size or default_batch_size(model.task, model.device)
    errors = {n: str(p) for n, p in enumerate(paths) if not isinstance(p, str)}
    paths = [p if isinstance(p, str) else "" for p in paths]
    device = model.device
    gpu_decode = (
        device.startswith("cuda")
        and all(p.lower().endswith((".jpg", ".jpeg")) for p in paths if p)
        and all(getattr(it, "box", None) is None for it in items)
    )
    in_sizes = [
        model.preprocess.output_size(h, w)
        if getattr(it, "box", None) is None or model.preprocess.crop
        else (0, n)
        for n, (it, (w, h)) in enumerate(zip(items, sizes, strict=True))
    ]
    order = [n for n in range(len(items)) if n not in errors]
    batches = [[order[k] for k in b] for b in _batches([in_sizes[n] for n in order], batch_size)]
    data = _Inputs(items, paths, sizes, model.preprocess, raw_bytes=gpu_decode)
    on_cpu = _Inputs(items, paths, sizes, model.preprocess)  # the fallback of GPU decoding
    loader = torch.utils.data.DataLoader(
        data,
        batch_sampler=batches,
        num_workers=workers if len(items) > 8 else 0,
        collate_fn=_collate,
        pin_memory=device.startswith("cuda"),
        worker_init_fn=_one_thread,
    )
    done = 0
    for n, err in errors.items():
        done += 1
        yield items[n], None, err
    for x, idx, bad in loader:
        if cancel is not None and cancel.is_set():
            raise Cancelled("stopped by the user")
        if gpu_decode and idx:
            x, idx, more = _decode_on_gpu(x, idx, sizes, model.preprocess, device, on_cpu)
            bad = bad + more
        for err, i in bad:
            yield items[i], None, err
        if idx:
            for i, out in zip(idx, _forward(model, x, [sizes[i] for i in idx]), strict=True):
                yield items[i], out, None
        done += len(idx) + len(bad)
        if progress:
            progress(done, len(items))


def _one_thread(_worker: int) -> None:
    """Workers decode and resize; the cores' threads belong to the model in the main process."""
    import torch

    torch.set_num_threads(1)


def default_batch_size(task: str, device: str) -> int:
    """Big batches feed a GPU; on a CPU, segmentation activations at 520 px outgrow the caches."""
    if device.startswith("cuda"):
        return 256 if task == "classify" else 16
    return 32 if task == "classify" else 2


def _decode_on_gpu(
    raw: list, idx: list[int], sizes: list[tuple[int, int]], preprocess, device: str, on_cpu
):
    """Batch-decode JPEG bytes on the GPU and preprocess there; an item the GPU cannot decode, or
    whose pixels do not have the annotated size (EXIF rotation), goes through the CPU loader.

    Returns ``(batch, kept indices, [(error, index), ...])``.
    """
    import warnings

    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        with (
            warnings.catch_warnings()
        ):  # torchvision 0.29 points to TorchCodec; its decode_jpeg still works
            warnings.simplefilter("ignore", DeprecationWarning)
            images = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # one bad file fails the batch: let the CPU loader sort them out
        images = [None] * len(raw)
    good, kept, bad = [], [], []
    for im, i in zip(images, idx, strict=True):
        w, h = sizes[i]
        x = preprocess(im) if im is not None and tuple(im.shape[-2:]) == (h, w) else on_cpu[i][0]
        if isinstance(x, str):
            bad.append((x, i))
        else:
            good.append(x.to(device))
            kept.append(i)
    return (torch.stack(good) if good else None), kept, bad


def _forward(model: LoadedModel, x, sizes: list[tuple[int, int]]) -> list:
    """Outputs of one batch; on CUDA out-of-memory the batch is halved and retried."""
    import torch

    from explorer.models.outputs import logits

    try:
        with GPU_LOCK, torch.inference_mode():
            x = x.to(model.device, non_blocking=True)
            cuda = model.device.startswith("cuda")
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = model.module(x)
            out = logits(out)
            return _postprocess(model, out.float(), sizes)
    except torch.cuda.OutOfMemoryError:
        if len(x) == 1:
            raise ExplorerError("the GPU ran out of memory even for one image") from None
        torch.cuda.empty_cache()
        half = len(x) // 2
        return _forward(model, x[:half], sizes[:half]) + _forward(model, x[half:], sizes[half:])


def _postprocess(model: LoadedModel, out, sizes: list[tuple[int, int]]) -> list:
    import torch
    import torch.nn.functional as F

    if model.task == "classify":
        return list(torch.softmax(out, 1).cpu().numpy())
    # per-label scores (mean winning probability) on a 4x coarser grid: cheap, and only a summary
    coarse = torch.softmax(out[:, :, ::4, ::4], 1).max(1)
    results = []
    for k, (w, h) in enumerate(sizes):
        logits = F.interpolate(out[k : k + 1], size=(h, w), mode="bilinear", align_corners=False)[0]
        labels = logits.argmax(0)
        prob, small = coarse.values[k].flatten(), coarse.indices[k].flatten()
        sums = torch.zeros(out.shape[1], device=out.device).index_add_(0, small, prob)
        counts = torch.bincount(small, minlength=out.shape[1]).clamp(min=1)
        scores = {int(c): float(sums[c] / counts[c]) for c in torch.unique(labels).tolist()}
        results.append((labels.to(torch.uint8).cpu().numpy(), scores))
    return results
