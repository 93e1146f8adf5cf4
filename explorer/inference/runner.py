"""The batch runner: images (or object crops) -> model outputs, on the GPU when there is one.

Use :func:`run` (items of a COCO index) or :func:`run_paths` (bare image files) when every output
must come from the model; :func:`explorer.inference.cache.predict` is the same run through the
prediction cache, which is what the CLI and the pages use.

Images are decoded and preprocessed in DataLoader workers (on CUDA, JPEG bytes are decoded on
the GPU instead), batched by identical input size so no padding changes a prediction, and run
under ``torch.inference_mode`` (bf16 autocast, channels_last, pinned memory on CUDA). A CUDA
out-of-memory halves the batch and retries. Progress is reported through a callback and a
``threading.Event`` cancels between batches. One process-wide lock serialises GPU work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from explorer.coco.images import crop_box, load_rgb, read_image_bytes, resolve_image_path
from explorer.errors import ExplorerError
from explorer.inference.options import DEFAULT_OPTIONS, Progress, RunOptions
from explorer.inference.outputs import codec_for

if TYPE_CHECKING:  # the runner itself needs no index (bench/bench_infer.py runs it on bare files)
    from explorer.coco.dataset import Dataset
    from explorer.coco.index import CocoIndex
    from explorer.models.weights import LoadedModel

GPU_LOCK = threading.Lock()


class Rate:
    """Reads a run's progress calls as "12 of 41 · 0.8/s · about 36 s left": the rate counts
    only the items done since the first call (cached ones come back at once)."""

    def __init__(self, clock: Callable[[], float] | None = None):
        import time

        self._clock = clock or time.monotonic
        self._start: tuple[float, int] | None = None

    def __call__(self, done: int, total: int) -> str:
        now = self._clock()
        if self._start is None:
            self._start = (now, done)
        t0, d0 = self._start
        head = f"{done:,} of {total:,}"
        if done >= total:
            return head
        if done == d0 or now <= t0:
            return f"{head} · starting (the first batch is on its way)"
        rate = (done - d0) / (now - t0)
        return f"{head} · {rate:.2g}/s · about {_duration((total - done) / rate)} left"


def split_progress(progress: Progress | None, parts: int) -> Callable[[int], Progress]:
    """Progress callbacks for ``parts`` runs one after another, reported to ``progress`` as one
    count out of ``parts * 1000``: ``split(k)`` is the callback of run ``k``."""
    steps = [0.0] * parts

    def split(k: int) -> Progress:
        def report(done: int, total: int) -> None:
            steps[k] = done / max(total, 1)
            if progress:
                progress(round(sum(steps) * 1000), parts * 1000)

        return report

    return split


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Item:
    """One input: a whole image, or one annotation's box (x, y, w, h) on it (a crop)."""

    image_row: int
    image_id: int
    box: tuple[float, float, float, float] | None = None
    annotation_id: int | None = None

    @property
    def key(self) -> str:
        """The prediction cache's key: ``img:<image id>``, ``ann:<annotation id>`` for an
        annotation's crop, ``box:<image id>:<x,y,w,h>`` for any other region (a candidate object).

        Caches written before Items carried ids hold the same strings, so they stay valid."""
        if self.annotation_id is not None:
            return f"ann:{self.annotation_id}"
        if self.box is not None:
            return f"box:{self.image_id}:" + ",".join(f"{v:.6g}" for v in self.box)
        return f"img:{self.image_id}"


class Prediction(NamedTuple):
    """What a run yields for one item: its output, or None and why it could not be read.

    ``output`` is an :data:`~explorer.inference.outputs.Output` from :func:`run`;
    :func:`explorer.inference.cache.predict` yields its decoded records
    (:data:`~explorer.inference.outputs.Record`) instead.
    """

    item: Item
    output: Any
    error: str | None


class _Inputs:
    """A map-style dataset of preprocessed inputs (picklable for DataLoader workers)."""

    def __init__(
        self,
        items: Sequence[Item],
        paths: list[str],
        sizes: list[tuple[int, int]],
        preprocess,
        raw_bytes: bool = False,
    ):
        self.items, self.paths, self.sizes = items, paths, sizes
        self.preprocess, self.raw_bytes = preprocess, raw_bytes
        self._last: tuple[str, np.ndarray] | None = None  # the image the last crop came from

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import torch

        if self.raw_bytes:  # decoded on the GPU by the runner
            try:
                data = bytearray(read_image_bytes(self.paths[i]))
            except ExplorerError as e:
                return str(e), i
            return torch.frombuffer(data, dtype=torch.uint8), i
        try:
            rgb = self._decoded(i)
        except ExplorerError as e:
            return str(e), i
        return input_from(rgb, self.sizes[i], self.items[i].box, self.preprocess), i

    def _decoded(self, i: int) -> np.ndarray:
        """Item ``i``'s image; a crop reuses the image decoded for the crop before it (an image's
        crops are consecutive items and batches keep their order: one decode per image, not one
        per crop)."""
        path = self.paths[i]
        if self._last is not None and self._last[0] == path:
            return self._last[1]
        rgb = load_rgb(path, self.sizes[i])
        self._last = (path, rgb) if self.items[i].box is not None else None
        return rgb


def decoded_inputs(
    items: Sequence[Item], paths: list[str], sizes: list[tuple[int, int]], transform
) -> _Inputs:
    """``[i]`` → ``(transform(input of item i), i)``, or ``(error text, i)``: the runner's own
    inputs (each image decoded once for all its consecutive crops), with any transform (the
    trainer takes a preprocessing's :meth:`~explorer.models.preprocess.Preprocess.geometry`)."""
    return _Inputs(items, paths, sizes, transform)


def load_input(path: str, size: tuple[int, int], box, preprocess):
    """One model input: the image at ``path`` of annotated ``size`` (width, height), cropped to
    ``box`` (COCO x, y, w, h, grown by the crop context) when given, preprocessed. Every engine
    reads its inputs this way.

    Raises:
        ImageError: the image cannot be read (see :func:`explorer.coco.images.load_rgb`).
    """
    return input_from(load_rgb(path, size), size, box, preprocess)


def input_from(rgb: np.ndarray, size: tuple[int, int], box, preprocess):
    """:func:`load_input` on an image already decoded."""
    import torch

    if box is not None:
        x0, y0, x1, y1 = crop_box(box, *size)
        rgb = rgb[y0:y1, x0:x1]
    return preprocess(torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1))


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
    return [Item(int(r), int(index.images["id"][r])) for r in image_rows]


def _box(xywh) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in xywh)
    return x, y, w, h


def items_for_crops(index: CocoIndex, image_rows, include_crowd: bool = False) -> list[Item]:
    """One item per annotation (non-crowd unless asked) of the given images, in index order."""
    anns = index.annotations
    return [
        Item(int(r), int(index.images["id"][r]), _box(anns["bbox"][a]), int(anns["id"][a]))
        for r in image_rows
        for a in index.annotation_rows(int(r)).tolist()
        if include_crowd or not anns["iscrowd"][a]
    ]


def run(
    model: LoadedModel,
    dataset: Dataset,
    items: Sequence[Item],
    options: RunOptions = DEFAULT_OPTIONS,
) -> Iterator[Prediction]:
    """Yield a :class:`Prediction` for every item, in batches (not in the items' order).

    Its ``output`` is an :data:`~explorer.inference.outputs.Output`; ``error`` says why an item
    could not be read (its output is then None).

    Raises:
        Cancelled: ``options.cancel`` was set.
    """
    paths, sizes = item_files(dataset, items)
    yield from run_paths(model, items, paths, sizes, options)


@dataclass(frozen=True)
class LocalEngine:
    """This process: :func:`run` (images decoded by ``options.workers`` loader processes)."""

    def run(
        self, model: LoadedModel, dataset: Dataset, items: Sequence[Item], options: RunOptions
    ) -> Iterator[Prediction]:
        return run(model, dataset, items, options)


def item_files(
    dataset: Dataset, items: Sequence[Item]
) -> tuple[list[str | Exception], list[tuple[int, int]]]:
    """Each item's image file (or the error saying why it has none) and annotated (width,
    height).

    Raises:
        ExplorerError: no image folder at all.
    """
    index, images_dir = dataset.index, dataset.images
    if images_dir is None:
        raise ExplorerError("no image folder: predictions need the images (--images DIR)")
    paths: list[str | Exception] = []
    for it in items:
        try:
            name = str(index.images["file_name"][it.image_row])
            paths.append(str(resolve_image_path(images_dir, name)))
        except ExplorerError as e:
            paths.append(e)
    sizes = [
        (int(index.images["width"][it.image_row]), int(index.images["height"][it.image_row]))
        for it in items
    ]
    return paths, sizes


def run_paths(
    model: LoadedModel,
    items: Sequence[Item],
    paths: Sequence[str | Exception],
    sizes: list[tuple[int, int]],
    options: RunOptions = DEFAULT_OPTIONS,
) -> Iterator[Prediction]:
    """:func:`run` on image files: ``paths[i]`` (or an exception saying why there is none) of
    annotated size ``sizes[i]`` = (width, height); ``items[i].box`` crops."""
    errors = {n: str(p) for n, p in enumerate(paths) if not isinstance(p, str)}
    files = [p if isinstance(p, str) else "" for p in paths]
    gpu_decode = _can_decode_on_gpu(model.device, items, files)
    inputs = _Inputs(items, files, sizes, model.preprocess, raw_bytes=gpu_decode)
    loader = _loader(model, inputs, options, errors)
    on_cpu = _Inputs(items, files, sizes, model.preprocess)  # the fallback of GPU decoding
    for n, err in errors.items():
        yield Prediction(items[n], None, err)
    done = len(errors)
    for x, idx, bad in loader:
        options.check_cancel()
        if gpu_decode and idx:
            x, idx, more = _decode_on_gpu(x, idx, model.device, on_cpu)
            bad = bad + more
        for err, i in bad:
            yield Prediction(items[i], None, err)
        if idx:
            for i, out in zip(idx, forward(model, x, [sizes[i] for i in idx]), strict=True):
                yield Prediction(items[i], out, None)
        done += len(idx) + len(bad)
        if options.progress:
            options.progress(done, len(items))


def _can_decode_on_gpu(device: str, items: Sequence[Item], files: list[str]) -> bool:
    """nvJPEG decodes whole JPEG images; crops and other formats go through PIL."""
    return (
        device.startswith("cuda")
        and all(p.lower().endswith((".jpg", ".jpeg")) for p in files if p)
        and all(it.box is None for it in items)
    )


def _loader(model: LoadedModel, inputs: _Inputs, options: RunOptions, skip: dict[int, str]):
    """A DataLoader over the readable items (those not in ``skip``) whose batches hold inputs
    of one size."""
    import torch

    items, sizes = inputs.items, inputs.sizes
    batch_size = options.batch_size or codec_for(model).default_batch_size(model.device)
    in_sizes = [
        model.preprocess.output_size(h, w)
        if it.box is None or model.preprocess.crop
        else (0, n)  # a crop kept at its own size cannot be stacked: a batch of its own
        for n, (it, (w, h)) in enumerate(zip(items, sizes, strict=True))
    ]
    order = [n for n in range(len(items)) if n not in skip]
    batches = [[order[k] for k in b] for b in _batches([in_sizes[n] for n in order], batch_size)]
    # a map-style dataset (all a DataLoader reads is __getitem__ and __len__) that the runner
    # defines without importing torch at module level
    return torch.utils.data.DataLoader(
        inputs,  # type: ignore[arg-type]
        batch_sampler=batches,
        num_workers=options.workers if len(items) > 8 else 0,
        collate_fn=_collate,
        pin_memory=model.device.startswith("cuda"),
        worker_init_fn=_one_thread,
    )


def _one_thread(_worker: int) -> None:
    """Workers decode and resize; the cores' threads belong to the model in the main process."""
    import torch

    torch.set_num_threads(1)


def _decode_on_gpu(raw: list, idx: list[int], device: str, on_cpu: _Inputs):
    """Batch-decode JPEG bytes on the GPU and preprocess there; an item the GPU cannot decode, or
    whose pixels do not have the annotated size (EXIF rotation), goes through the CPU loader
    ``on_cpu`` (whose sizes and preprocessing are the items').

    Returns ``(batch, kept indices, [(error, index), ...])``.
    """
    import warnings

    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        # torchvision 0.29 points to TorchCodec; its decode_jpeg still works
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            images = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:  # one bad file fails the batch: let the CPU loader sort them out
        images = [None] * len(raw)
    sizes, preprocess = on_cpu.sizes, on_cpu.preprocess
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


def forward(model: LoadedModel, x, sizes: list[tuple[int, int]]) -> list:
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
            return codec_for(model).postprocess(out.float(), sizes)
    except torch.cuda.OutOfMemoryError:
        if len(x) == 1:
            raise ExplorerError("the GPU ran out of memory even for one image") from None
        torch.cuda.empty_cache()
        half = len(x) // 2
        return forward(model, x[:half], sizes[:half]) + forward(model, x[half:], sizes[half:])
