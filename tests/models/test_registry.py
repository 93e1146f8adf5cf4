"""The registry is the one place a model is described: a toy model registered here trains and
predicts through the same code as the built-in ones, with no other module told about it."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import torch
from torch import nn

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference import classification
from explorer.inference.options import RunOptions
from explorer.models import (
    ModelSpec,
    QuickPreset,
    get_spec,
    list_models,
    load_model,
    logits,
    register,
    unregister,
)
from explorer.models.preprocess import Preprocess
from explorer.training import TrainConfig, runs, task_models, train
from tests.helpers import ROOT, coco_subset

TOY = "toy-cnn"


def tiny_cnn(num_classes: int, encoder: str | None, aux_loss: bool) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, num_classes),
    )


def new_head(model: nn.Sequential, n: int) -> None:
    model[-1] = nn.Linear(model[-1].in_features, n)


@pytest.fixture
def toy():
    spec = register(
        ModelSpec(
            name=TOY,
            task="classify",
            label_space="dataset",
            description="a two-layer CNN that learns the dataset's classes",
            preprocess=Preprocess(resize=40, crop=32),
            build=tiny_cnn,
            head_size=10,
            reset_head=new_head,
            quick=QuickPreset(epochs=2, batch_size=16, lr=3e-3, image_size=32, time_budget=120),
        )
    )
    yield spec
    unregister(TOY)


def test_a_registered_toy_model_trains_and_predicts(toy, sample_root, tmp_path):
    assert TOY in list_models("classify") and TOY in task_models("classify")
    ann = sample_root / "annotations"
    cfg = TrainConfig(
        task="classify",
        model=TOY,
        preset="quick",
        coco=str(coco_subset(ann / "instances_train2017.json", tmp_path / "train.json", 24)),
        images=str(sample_root / "train2017"),
        val_coco=str(coco_subset(ann / "instances_val2017.json", tmp_path / "val.json", 12)),
        val_images=str(sample_root / "val2017"),
        device="cpu",
        workers=0,
        out=str(tmp_path / "run"),
    )
    resolved = cfg.resolved()
    assert (resolved.epochs, resolved.batch_size, resolved.image_size) == (2, 16, 32)

    run = train(cfg)
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert [r["epoch"] for r in runs.read_metrics(run) if r["kind"] == "epoch"] == [1, 2]

    model = load_model(str(run))  # the checkpoint names the toy; its record rebuilds it
    index = open_index(cfg.val_coco)
    names = [c["name"] for c in index.categories]
    assert model.name == TOY and model.class_names == names and not model.untrained
    table = classification.classification_table(
        model, Dataset(index, sample_root / "val2017"), True, [0, 1], RunOptions(workers=0)
    )
    assert len(table) and table["mapped_category"].isin(names).all()


def test_register_and_unregister(toy):
    with pytest.raises(ExplorerError, match="already registered"):
        register(toy)
    model = toy.build(3, None, False)
    toy.reset_head(model, 5)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)
    unregister(TOY)
    with pytest.raises(ExplorerError, match="unknown model 'toy-cnn'"):
        get_spec(TOY)


def test_every_builtin_record_resets_its_head():
    for name in list_models():
        spec = get_spec(name)
        model = spec.build(spec.head_size, spec.default_encoder, True)
        spec.reset_head(model, 3)
        model.eval()
        with torch.no_grad():
            side = max(spec.min_input_size or 64, 64)
            out = model(torch.zeros(1, 3, side, side))
        assert logits(out).shape[1] == 3, name


def test_no_module_outside_the_registry_branches_on_model_names():
    found = subprocess.run(
        ["grep", "-rnE", r'startswith\("(smp-|deeplabv3|alexnet)', "explorer", "pages", "app.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    assert not [line for line in found.splitlines() if not re.match(r"explorer/models/", line)]


def test_cpu_threads_follow_a_container_quota_not_the_host_count(tmp_path):
    import os

    from explorer.models.device import cpu_threads

    affinity = len(os.sched_getaffinity(0))
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")  # a 1.5-core quota: 2 threads
    assert cpu_threads(quota) == min(affinity, 2)
    quota.write_text("max 100000\n")
    assert cpu_threads(quota) == affinity
    assert cpu_threads(tmp_path / "absent") == affinity
