"""Shared fixtures: an isolated cache directory, the embedded sample, the real coco-tiny files,
saved weights files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    """Every test run gets its own cache (index caches, the sample) and work folder (runs,
    reviews) instead of the repo's."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cache")
    mp.setenv("EXPLORER_CACHE", str(path))
    mp.setenv("EXPLORER_WORK", str(tmp_path_factory.mktemp("work")))
    yield path
    mp.undo()


@pytest.fixture(scope="session")
def sample_root(_cache_dir) -> Path:
    from explorer.coco.sample import write_sample

    return write_sample()


# The quick presets' recipes (explorer/models/registry.py) with fixed epochs and no time budget:
# a budget cuts epochs by wall clock, so a busy machine trained weaker models (one epoch: val_acc
# 0.80, mIoU 0.20) and the tests downstream judged those. Seeded, these give the same models on
# every machine.
QUICK_RECIPES: dict[str, dict] = {
    "cls": {"task": "classify", "model": "alexnet-classic", "epochs": 4, "batch_size": 32,
            "lr": 5e-4, "image_size": 128},
    "seg": {"task": "segment", "model": "smp-deeplabv3", "encoder": "resnet18", "epochs": 5,
            "batch_size": 16, "lr": 2e-3, "image_size": 96},
}  # fmt: skip


@pytest.fixture(scope="session")
def quick_runs(sample_root, tmp_path_factory) -> dict[str, Path]:
    """A classifier and a segmenter trained on the sample with :data:`QUICK_RECIPES` (val_acc
    0.962, val_mIoU 0.694; about 4 minutes on 2 quiet cores): ``{"cls": run folder, "seg": run
    folder}``."""
    from explorer.training import TrainConfig, train

    root = tmp_path_factory.mktemp("runs")
    ann = sample_root / "annotations"
    data = {
        "coco": str(ann / "instances_train2017.json"),
        "images": str(sample_root / "train2017"),
        "val_coco": str(ann / "instances_val2017.json"),
        "val_images": str(sample_root / "val2017"),
        "device": "cpu",
    }
    for name, recipe in QUICK_RECIPES.items():
        config = TrainConfig(out=str(root / name), **recipe, **data)
        assert not config.resolved().time_budget, "a time budget makes the models machine-bound"
        train(config)
    return {name: root / name for name in QUICK_RECIPES}


# Weak on purpose: one epoch on the 24 training images of ``tiny_data`` at 64 px (about 1.5
# minutes on 2 busy cores; val_acc 0.07, val_mIoU 0.006): what a busy machine's cut preset gives,
# only worse. Seeded: the same weak models on every machine.
WEAK_RECIPES: dict[str, dict] = {
    "cls": {"task": "classify", "model": "alexnet-classic", "epochs": 1, "batch_size": 16,
            "image_size": 64},
    "seg": {"task": "segment", "model": "smp-deeplabv3", "encoder": "resnet18", "epochs": 1,
            "batch_size": 8, "image_size": 64},
}  # fmt: skip


@pytest.fixture(scope="session")
def weak_runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """A classifier and a segmenter trained badly on the sample (:data:`WEAK_RECIPES`), well
    below their tasks' trusted quality: ``{"cls": run folder, "seg": run folder}``."""
    from explorer.training import TrainConfig, train

    root = tmp_path_factory.mktemp("weak")
    for name, recipe in WEAK_RECIPES.items():
        train(TrainConfig(out=str(root / name), device="cpu", workers=0, **recipe, **tiny_data))
    return {name: root / name for name in WEAK_RECIPES}


@pytest.fixture(scope="session")
def alexnet_file(tmp_path_factory) -> Path:
    """A saved state_dict of torchvision's AlexNet (seeded random weights: none can be
    downloaded here), loaded through the same path as a user's file."""
    import torch
    import torchvision

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


@pytest.fixture(scope="session")
def mbv3_file(tmp_path_factory) -> Path:
    """A saved state_dict of DeepLabV3-MobileNetV3 in the published layout (21 VOC labels)."""
    import torch
    import torchvision

    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("w") / "mbv3.pth"
    m = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=21, aux_loss=True
    )
    torch.save(m.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def real():
    """coco-tiny's val2017 index and image folder (skipped when the folder is absent)."""
    from explorer.coco import open_index
    from tests.helpers import tiny

    ann, images = tiny("val2017")
    return open_index(ann), images


@pytest.fixture(scope="session")
def tiny_data(sample_root, tmp_path_factory) -> dict[str, str]:
    """A 24-image training and 12-image validation slice of the sample, as TrainConfig fields."""
    from tests.helpers import coco_subset

    d = tmp_path_factory.mktemp("tiny")
    ann = sample_root / "annotations"
    return {
        "coco": str(coco_subset(ann / "instances_train2017.json", d / "train.json", 24)),
        "images": str(sample_root / "train2017"),
        "val_coco": str(coco_subset(ann / "instances_val2017.json", d / "val.json", 12)),
        "val_images": str(sample_root / "val2017"),
    }


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 3 MB file system (tmpfs), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)
