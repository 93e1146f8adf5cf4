"""Training examples decoded when a batch first asks for them (issue 22: a run's first step
waited for the whole training set to be decoded)."""

from __future__ import annotations

import shutil

import pytest
import torch

from explorer.errors import ExplorerError
from explorer.inference.options import RunOptions
from explorer.training import TrainConfig
from explorer.training.data import Tensors, load_crops, load_segmentation, train_and_val


def settings(data: dict[str, str], **kw):
    return TrainConfig(task="classify", model="alexnet-classic", device="cpu", **data, **kw)


def crops(data: dict[str, str], workers: int = 0) -> Tensors:
    split, _ = train_and_val(settings(data).resolved())
    categories = [c["id"] for c in split.dataset.index.categories]
    return load_crops(split, categories, 40, 64.0, RunOptions(workers=workers))


def test_on_demand_examples_are_those_decoded_at_once(tiny_data):
    """Decoded batch by batch in a shuffled order (by threads or not), the examples are exactly
    those decoded in one go: a run's results do not depend on when its crops were read."""
    whole = crops(tiny_data)
    whole.load_all()
    assert len(whole) > 8 and not whole.skipped
    for workers in (0, 2):
        lazy = crops(tiny_data, workers)
        order = torch.randperm(len(lazy), generator=torch.Generator().manual_seed(1))
        first = lazy.load(order[:4])
        assert torch.equal(first, order[:4])
        for batch in order[4:].split(4):
            lazy.load(batch)
        assert torch.equal(lazy.images, whole.images) and torch.equal(lazy.targets, whole.targets)


def test_segmentation_images_on_demand_are_those_decoded_at_once(tiny_data):
    split, _ = train_and_val(settings(tiny_data).resolved())
    categories = [c["id"] for c in split.dataset.index.categories]
    whole = load_segmentation(split, categories, 32, RunOptions(workers=0))
    whole.load_all()
    lazy = load_segmentation(split, categories, 32, RunOptions(workers=2))
    for batch in torch.arange(len(lazy)).flip(0).split(5):
        lazy.load(batch)
    assert torch.equal(lazy.images, whole.images) and torch.equal(lazy.targets, whole.targets)
    assert torch.equal(lazy.class_targets(), whole.targets)


def test_an_unreadable_image_leaves_its_batch_and_is_reported(tiny_data, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(tiny_data["images"], images)
    split, _ = train_and_val(settings({**tiny_data, "images": str(images)}).resolved())
    broken = images / str(split.dataset.index.images["file_name"][0])
    broken.write_bytes(broken.read_bytes()[:200])  # truncated
    lazy = crops({**tiny_data, "images": str(images)})
    on_broken = split.dataset.index.annotations["image_row"] == 0
    assert on_broken.any()
    readable = lazy.load(torch.arange(len(lazy)))
    assert 0 < len(readable) < len(lazy)
    assert lazy.skipped and all(str(broken) in s for s in lazy.skipped)


def test_no_readable_example_at_all_is_one_error(tiny_data, tmp_path):
    split, _ = train_and_val(settings({**tiny_data, "images": str(tmp_path)}).resolved())
    lazy = crops({**tiny_data, "images": str(tmp_path)})  # an empty folder: every file missing
    with pytest.raises(ExplorerError, match="no readable object crops to train on"):
        lazy.load(torch.arange(2))
    assert len(split.rows)
