"""The batch runner: batches equal single images, the GPU decode path, cancel, item ids, OOM."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.errors import Cancelled
from explorer.inference import runner as infer
from explorer.inference.options import RunOptions
from explorer.models import (
    UNTRAINED,
    WeightsFile,
    load_model,
)


def test_runner_batches_equal_single_images(real, mbv3_file):
    index, images = real
    model = load_model("deeplabv3-mobilenet-v3-large", WeightsFile(mbv3_file))
    rows = list(range(6))
    batched = {
        it.image_row: out
        for it, out, _ in infer.run(
            model, Dataset(index, images), infer.items_for_images(index, rows), RunOptions(4)
        )
    }
    for r in rows:
        ((_, single, _),) = infer.run(
            model, Dataset(index, images), infer.items_for_images(index, [r]), RunOptions(1)
        )
        assert np.array_equal(single[0], batched[r][0])
        assert single[0].shape == (index.images["height"][r], index.images["width"][r])


def test_gpu_decode_path_matches_on_cpu(real, alexnet_file):
    """The JPEG-bytes path (used on CUDA) gives the same inputs as the PIL path (run on the CPU
    here)."""
    index, images = real
    model = load_model("alexnet", WeightsFile(alexnet_file))
    items = infer.items_for_images(index, range(3))
    paths = [str(images / index.images["file_name"][i]) for i in range(3)]
    sizes = [(int(index.images["width"][i]), int(index.images["height"][i])) for i in range(3)]
    pil = infer._Inputs(items, paths, sizes, model.preprocess)
    raw = infer._Inputs(items, paths, sizes, model.preprocess, raw_bytes=True)
    batch, kept, bad = infer._decode_on_gpu([raw[i][0] for i in range(3)], [0, 1, 2], "cpu", pil)
    assert kept == [0, 1, 2] and not bad
    for i in range(3):
        assert (
            pil[i][0] - batch[i]
        ).abs().max() < 0.1  # libjpeg versions may differ by a few levels
    corrupt = torch.frombuffer(bytearray(b"\xff\xd8 not a jpeg"), dtype=torch.uint8)
    batch, kept, bad = infer._decode_on_gpu([corrupt, raw[1][0]], [0, 1], "cpu", pil)
    assert kept == [0, 1] and not bad  # the bad bytes fell back to the (good) file on disk


def test_cancel_stops_a_run(real, alexnet_file):
    index, images = real
    model = load_model("alexnet", WeightsFile(alexnet_file))
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        list(
            infer.run(
                model,
                Dataset(index, images),
                infer.items_for_images(index, range(4)),
                RunOptions(workers=0, cancel=stop),
            )
        )


def test_items_carry_ids_and_keep_their_cache_keys(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    (whole,) = infer.items_for_images(index, [0])
    assert whole.key == f"img:{int(index.images['id'][0])}" and whole.annotation_id is None
    crops = infer.items_for_crops(index, [0])
    anns = index.annotations
    assert [it.annotation_id for it in crops] == [
        int(anns["id"][a]) for a in index.annotation_rows(0) if not anns["iscrowd"][a]
    ]
    assert [it.key for it in crops] == [f"ann:{it.annotation_id}" for it in crops]


def test_cuda_out_of_memory_halves_the_batch(monkeypatch):
    """Simulated on the CPU: a forward of more than 2 images runs out of memory."""
    model = load_model("alexnet", UNTRAINED)
    real = model.module
    seen = []

    def forward(x):
        seen.append(len(x))
        if len(x) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    model.module = forward
    x = torch.randn(8, 3, 224, 224)
    outs = infer.forward(model, x, [(224, 224)] * 8)
    assert len(outs) == 8 and seen == [8, 4, 2, 2, 4, 2, 2]
    with torch.inference_mode():
        np.testing.assert_allclose(
            outs[5], torch.softmax(real(x[5:6]), 1)[0].numpy(), rtol=1e-4, atol=1e-6
        )


def test_crops_decode_each_image_once(real, alexnet_file, monkeypatch):
    """Issue 12: each crop decoded its whole JPEG again (804 decodes for 80 images)."""
    index, images = real
    model = load_model("alexnet", WeightsFile(alexnet_file))
    rows = list(range(12))
    items = infer.items_for_crops(index, rows)
    assert len(items) > 3 * len(rows)  # several objects per image
    decoded = []
    real_load = infer.load_rgb
    monkeypatch.setattr(infer, "load_rgb", lambda p, s: decoded.append(p) or real_load(p, s))
    got = {
        it.annotation_id: out
        for it, out, _ in infer.run(model, Dataset(index, images), items, RunOptions(16, 0))
    }
    assert len(decoded) == len({it.image_row for it in items})
    # the same outputs as one crop at a time
    for it in items[:: max(1, len(items) // 5)]:
        ((_, single, _),) = infer.run(model, Dataset(index, images), [it], RunOptions(1, 0))
        np.testing.assert_allclose(single, got[it.annotation_id], rtol=1e-4, atol=1e-6)


def test_progress_advances_per_batch_with_a_rate_and_time_left(sample_root):
    """Issue 12: a 326 s evaluation showed "0 of 41" and no ETA."""
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    model = load_model("deeplabv3-mobilenet-v3-large", UNTRAINED, "cpu")
    clock = [100.0]
    rate = infer.Rate(lambda: clock[0])
    seen = []

    def progress(done: int, total: int) -> None:
        clock[0] += 5.0  # each batch takes 5 s of the fake clock
        seen.append(rate(done, total))

    items = infer.items_for_images(index, range(6))
    list(
        infer.run(model, Dataset(index, sample_root / "val2017"), items, RunOptions(2, 0, progress))
    )
    # one call per batch (batches of at most 2 images of one size), counts rising to the end
    done = [int(t.split(" of ")[0]) for t in seen]
    assert len(seen) >= 3 and done == sorted(set(done)) and done[-1] == 6 and seen[-1] == "6 of 6"
    assert seen[0].endswith("starting (the first batch is on its way)")
    assert all("/s · about " in t and t.endswith(" s left") for t in seen[1:-1])
    slow = infer.Rate(iter([0.0, 10.0]).__next__)
    slow(0, 41)
    assert slow(2, 41) == "2 of 41 · 0.2/s · about 3 min left"
