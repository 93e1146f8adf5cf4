"""torchrun: two processes (gloo, CPU) train one run, written once, whose validation accuracy is
what a single-process evaluation of its checkpoint gives; a world of one does nothing collective."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.inference.classification import classification_scores, classification_table
from explorer.inference.options import RunOptions
from explorer.models import load_model
from explorer.training import distributed, runs
from tests.helpers import ROOT, train_command


def test_a_world_of_one_does_nothing_collective():
    world = distributed.from_environment({})
    assert (world.rank, world.size, world.main, world.distributed) == (0, 1, True, False)
    assert distributed.start(world, "cpu") == "cpu"
    assert distributed.sum_all(world, [1.5, 2], "cpu").tolist() == [1.5, 2.0]
    assert distributed.from_main(world, "x") == "x"
    two = [distributed.shard(distributed.World(r, 2), 7) for r in (0, 1)]
    assert sorted(np.concatenate(two).tolist()) == list(range(7))  # each index exactly once


def test_torchrun_two_processes_write_one_run_that_evaluate_agrees_with(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    base = train_command(tiny_data, run, "--task", "classify", "--model", "alexnet-classic")
    args = base[base.index("train") :]  # after `python -m explorer`
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run(
        [*cmd, "-m", "explorer", *args, "--epochs", "2", "--image-size", "64", "--batch-size", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("best val_acc") == 1  # rank 0 alone speaks
    config = json.loads((run / "config.json").read_text())
    assert config["world_size"] == 2
    rows = runs.read_metrics(run)
    assert [x["epoch"] for x in rows if x["kind"] == "epoch"] == [1, 2]  # written once
    steps = [x["step"] for x in rows if x["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))
    best = max(x["val_acc"] for x in rows if x["kind"] == "epoch")
    index = open_index(tiny_data["val_coco"])
    model = load_model(str(run / "best.pt"), device="cpu")
    table = classification_table(
        model, Dataset(index, ROOT / tiny_data["val_images"]), True, options=RunOptions(workers=0)
    )
    assert classification_scores(model, table, index.categories)["top1"] == best


def test_a_checkpoint_write_finishes_before_ctrl_c_or_sigterm_acts(tmp_path):
    """torchrun stops its workers with signals that may land mid-write: the write completes,
    then the interrupt is raised (a torn torch.save used to mark the run "failed")."""
    import os
    import signal

    import pytest
    import torch

    path = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        with runs._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            runs.save_checkpoint({"w": torch.zeros(1000)}, path)
            written = True
    assert written and torch.load(path, weights_only=True)["w"].shape == (1000,)
