"""Training end to end on a tiny slice of the sample: run folders, checkpoints, resume, NaN,
imports."""

from __future__ import annotations

import json
import subprocess
import threading

import numpy as np
import pytest
import torch

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference.classification import classification_table
from explorer.inference.options import RunOptions
from explorer.inference.segmentation import evaluate_segmentation
from explorer.models import get_spec, load_model
from explorer.training import Stopped, TrainConfig, runs, train
from explorer.training.events import EpochEnd, Loading, Preparing, Step
from explorer.training.trainer import Session
from tests.helpers import ROOT, train_command


def cli_train(tiny_data, out, *extra):
    command = train_command(tiny_data, out, *extra)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def epoch_lines(run):
    return [r for r in runs.read_metrics(run) if r["kind"] == "epoch"]


def check_run_folder(run, metric):
    for name in ("config.json", "metrics.jsonl", "best.pt", "status.json"):
        assert (run / name).is_file(), name
    check_finished_checkpoints(run)
    assert list(run.glob("events.out.tfevents.*")), "TensorBoard events"
    config = json.loads((run / "config.json").read_text())
    assert (
        config["dataset"]["train_fingerprint"]
        and config["versions"]["torch"]
        and config["device"] == "cpu"
    )
    epochs = epoch_lines(run)
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1))
    for e in epochs:
        for key in (
            "epoch",
            "step",
            "train_loss",
            "val_loss",
            metric,
            "lr",
            "seconds",
            "images_per_s",
        ):
            assert key in e and np.isfinite(e[key]), key
    steps = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1))
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    return config


def check_finished_checkpoints(run):
    """Issue 22: a finished run keeps no optimiser state (two thirds of an AdamW last.pt);
    last.pt is best.pt itself (one file on disk) when the last epoch was the best."""
    best = torch.load(run / "best.pt", weights_only=True)
    assert "optimizer" not in best
    final = epoch_lines(run)[-1]["epoch"]
    last = torch.load(run / "last.pt", weights_only=True)
    assert "optimizer" not in last and last["epoch"] == final
    same_file = (run / "last.pt").samefile(run / "best.pt")
    assert same_file == (best["epoch"] == final)


def test_classify_run_end_to_end(tiny_data, tmp_path):
    run = tmp_path / "cls"
    r = cli_train(
        tiny_data,
        run,
        "--task",
        "classify",
        "--model",
        "alexnet-classic",
        "--epochs",
        "2",
        "--batch-size",
        "16",
    )
    assert r.returncode == 0, r.stderr
    assert "best val_acc" in r.stdout
    config = check_run_folder(run, "val_acc")
    index = open_index(tiny_data["val_coco"])
    assert config["class_names"] == [c["name"] for c in index.categories]
    model = load_model(str(run))  # the registry rebuilds it from the run folder
    assert (
        model.name == "alexnet-classic"
        and model.class_names == config["class_names"]
        and not model.untrained
    )
    table = classification_table(
        model, Dataset(index, ROOT / tiny_data["val_images"]), True, [0, 1], RunOptions(workers=0)
    )
    assert len(table) and table["mapped_category"].isin(config["class_names"]).all()


def test_segment_run_end_to_end(tiny_data, tmp_path):
    run = tmp_path / "seg"
    r = cli_train(
        tiny_data,
        run,
        "--task",
        "segment",
        "--model",
        "smp-deeplabv3",
        "--encoder",
        "resnet18",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--image-size",
        "64",
        "--dice",
    )
    assert r.returncode == 0, r.stderr
    check_run_folder(run, "val_miou")
    assert all(0 <= e["val_pixel_acc"] <= 1 for e in epoch_lines(run))
    model = load_model(str(run / "best.pt"))
    assert (
        model.class_names[0] == "background"
        and model.preprocess.square
        and model.preprocess.resize == 64
    )
    index = open_index(tiny_data["val_coco"])
    val = Dataset(index, ROOT / tiny_data["val_images"])
    ev = evaluate_segmentation(model, val, [0, 1], options=RunOptions(workers=0))
    assert ev["labels"] == "coco" and ev["images"] == 2 and 0 <= ev["pixel_acc"] <= 1
    # the run's validation is what evaluate gives for its best.pt on the whole split (the
    # training copy keeps its weights channels-last: a few pixels of float noise at most)
    rows = np.arange(index.num_images)
    whole = evaluate_segmentation(model, val, rows, options=RunOptions(workers=0))
    best = max(epoch_lines(run), key=lambda e: e["val_miou"])
    assert abs(best["val_miou"] - whole["miou"]) < 1e-5
    assert abs(best["val_pixel_acc"] - whole["pixel_acc"]) < 1e-5


def config(tiny_data, out, **kw):
    return TrainConfig(
        task="classify",
        model="alexnet-classic",
        out=str(out),
        device="cpu",
        workers=0,
        **{"batch_size": 16, **tiny_data, **kw},
    )


def test_resume_after_a_stop_and_a_kill_gives_an_unbroken_history(tiny_data, tmp_path):
    run = tmp_path / "r"
    stop = threading.Event()

    def stop_after_first_epoch(event):
        if isinstance(event, EpochEnd) and event.epoch == 1:
            stop.set()

    with pytest.raises(Stopped):
        train(config(tiny_data, run, epochs=3), stop_after_first_epoch, stop)
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert [e["epoch"] for e in epoch_lines(run)] == [1]
    with open(
        run / "metrics.jsonl", "a"
    ) as f:  # what a kill mid-epoch leaves: steps past last.pt, a torn line
        f.write(
            json.dumps({"kind": "step", "epoch": 1.5, "step": 999, "train_loss": 1.0, "lr": 0.1})
            + "\n"
        )
        f.write('{"kind": "step", "ep')
    train(config(tiny_data, run), resume=str(run))
    assert [e["epoch"] for e in epoch_lines(run)] == [1, 2, 3]
    steps = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(1, len(steps) + 1)) and 999 not in steps
    assert json.loads((run / "status.json").read_text())["status"] == "finished"


def stop_at(stop, epoch, batch):
    """A progress callback that asks for a stop once ``batch`` of ``epoch`` is done."""

    def progress(event):
        if isinstance(event, Step) and (event.epoch, event.batch) == (epoch, batch):
            stop.set()

    return progress


def step_losses(run):
    return [(r["step"], r["train_loss"]) for r in runs.read_metrics(run) if r["kind"] == "step"]


def test_stop_within_the_first_epoch_is_kept_and_resume_continues_it(tiny_data, tmp_path):
    """Issue 22: a Stop during the first epoch said "can be resumed", yet nothing was kept. Now
    last.pt keeps the batches done, and the resumed run takes exactly the steps an unstopped
    run takes (same order, augmentation and dropout)."""
    settings = {"epochs": 2, "batch_size": 4, "image_size": 64}
    whole = tmp_path / "whole"
    train(config(tiny_data, whole, **settings))
    batches = next(r for r in runs.read_metrics(whole) if r["kind"] == "epoch")["step"]
    assert batches >= 4, "the test needs an epoch of several batches"

    run, stop = tmp_path / "stopped", threading.Event()
    with pytest.raises(Stopped) as stopped:
        train(config(tiny_data, run, **settings), stop_at(stop, 1, 2), stop)
    said = str(stopped.value)
    assert "batch 2 of epoch 1" in said and "Resume" in said, said
    status = runs.read_status(run)
    assert status["status"] == "stopped" and status["message"] == said
    assert runs.read_run(run).resumable
    kept = torch.load(run / "last.pt", weights_only=True)
    assert kept["epoch"] == 0 and kept["step"] == 2 and kept["within_epoch"]["batch"] == 2

    train(config(tiny_data, run), resume=str(run))
    assert runs.read_status(run)["status"] == "finished"
    got, want = step_losses(run), step_losses(whole)
    assert [s for s, _ in got] == [s for s, _ in want] == list(range(1, 2 * batches + 1))
    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-4)
    assert [e["val_acc"] for e in epoch_lines(run)] == pytest.approx(
        [e["val_acc"] for e in epoch_lines(whole)]
    )


def test_stop_before_the_first_step_says_nothing_was_kept(tiny_data, tmp_path):
    run, stop = tmp_path / "early", threading.Event()

    def stop_while_preparing(event):  # nothing is loaded before the first step any more
        if isinstance(event, Preparing):
            stop.set()

    with pytest.raises(Stopped, match="nothing was kept to resume"):
        train(config(tiny_data, run, epochs=1), stop_while_preparing, stop)
    info = runs.read_run(run)
    assert info.status == "stopped" and not info.resumable and "nothing was kept" in info.message
    assert not (run / "last.pt").exists()


def test_the_first_step_comes_before_any_loading(tiny_data, tmp_path):
    """Issue 22: the first curve point came 43 s after Start, behind "loading validation crops":
    every training crop and then the validation set were decoded before the first step. Now a
    batch decodes the crops it needs, and the validation set loads at the first evaluation."""
    events: list = []
    train(config(tiny_data, tmp_path / "r", epochs=2, batch_size=4, image_size=64), events.append)
    first_step = next(i for i, e in enumerate(events) if isinstance(e, Step))
    assert not [e for e in events[:first_step] if isinstance(e, Loading)]
    loading = [i for i, e in enumerate(events) if isinstance(e, Loading)]
    assert {events[i].what for i in loading} == {"validation crops"}  # once, at the first
    first_epoch_end = next(i for i, e in enumerate(events) if isinstance(e, EpochEnd))
    assert all(first_step < i < first_epoch_end for i in loading)


def test_a_finished_run_is_not_resumed(tiny_data, tmp_path):
    run = tmp_path / "done"
    train(config(tiny_data, run, epochs=1))
    with pytest.raises(ExplorerError, match="the run has finished; there is nothing to resume"):
        train(config(tiny_data, run), resume=str(run))
    assert [e["epoch"] for e in epoch_lines(run)] == [1]  # its history untouched


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    real = Session._train_step

    def poisoned(self, *a):
        return float("nan") if self.epoch >= 1 else real(self, *a)

    monkeypatch.setattr(Session, "_train_step", poisoned)
    run = tmp_path / "nan"
    with pytest.raises(
        ExplorerError,
        match=r"the loss became nan at epoch 2.*last.pt holds the last good epoch \(1\)",
    ):
        train(config(tiny_data, run, epochs=3))
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert json.loads((run / "status.json").read_text())["status"] == "failed"


def test_atomic_checkpoint_writing(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    runs.save_checkpoint({"x": torch.ones(3)}, path)

    def broken(obj, f, *a, **k):
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        runs.save_checkpoint({"x": torch.zeros(3)}, path)
    assert torch.equal(
        torch.load(path, weights_only=True)["x"], torch.ones(3)
    )  # the old one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_bad_settings():
    with pytest.raises(ExplorerError, match="cannot be trained for classify"):
        TrainConfig(task="classify", coco="a", images="b", model="smp-deeplabv3").resolved()
    with pytest.raises(ExplorerError, match="unknown preset"):
        TrainConfig(
            task="segment", coco="a", images="b", model="smp-deeplabv3", preset="slow"
        ).resolved()
    cfg = TrainConfig(
        task="segment", coco="a", images="b", model="smp-deeplabv3", preset="quick", epochs=3
    ).resolved()
    quick = get_spec("smp-deeplabv3").quick
    assert (cfg.epochs, cfg.image_size, cfg.encoder) == (3, quick.image_size, quick.encoder)
    assert quick.epochs != 3  # explicit beats preset


def test_import_tensorboard_and_csv(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tb"))
    for step in range(5):
        w.add_scalar("loss", 1.0 / (step + 1), step)
    w.close()
    curves = runs.import_tensorboard(tmp_path / "tb")
    assert curves["metric"].unique().tolist() == ["loss"] and curves[
        "value"
    ].tolist() == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    (tmp_path / "wide.csv").write_text("epoch,val_acc,train_loss\n1,0.5,2.0\n2,0.7,1.0\n")
    wide = runs.import_csv(tmp_path / "wide.csv")
    assert set(wide["metric"]) == {"val_acc", "train_loss"} and len(wide) == 4
    (tmp_path / "long.csv").write_text("step,metric,value\n10,loss,3\n20,loss,2\n")
    assert runs.import_csv(tmp_path / "long.csv")["value"].tolist() == [3, 2]
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ExplorerError, match="needs a 'step' or 'epoch' column"):
        runs.import_csv(tmp_path / "bad.csv")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ExplorerError, match="no TensorBoard event files"):
        runs.import_tensorboard(tmp_path / "nothing")


def test_ctrl_c_leaves_a_resumable_run(tiny_data, tmp_path):
    import signal
    import time

    run = tmp_path / "sigint"
    args = train_command(
        tiny_data,
        run,
        *("--task", "classify", "--model", "alexnet-classic"),
        *("--epochs", "4", "--batch-size", "16"),
    )
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and not (run / "last.pt").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "resume" in err
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    r = cli_train(
        tiny_data, run, "--task", "classify", "--model", "alexnet-classic", "--resume", str(run)
    )
    assert r.returncode == 0, r.stderr
    assert [e["epoch"] for e in epoch_lines(run)] == [1, 2, 3, 4]


def test_an_unexpected_error_marks_the_run_failed(tiny_data, tmp_path, monkeypatch):
    def broken(self, *a):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(Session, "_train_step", broken)
    run = tmp_path / "crash"
    with pytest.raises(RuntimeError):
        train(config(tiny_data, run, epochs=1))
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "out of memory" in status["message"]
