"""What a run shows while it runs and how it says it ended: per-step records on disk as they
happen, the time budget's cut in words, real durations and epochs, other input sizes."""

from __future__ import annotations

import json
import time

import pytest

from explorer.coco import open_index
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference.options import RunOptions
from explorer.models import load_model
from explorer.training import runs, train, trainer
from explorer.training.data import crop_rows
from explorer.training.events import EpochEnd, Step
from explorer.training.trainer import Session
from tests.helpers import ROOT, train_command
from tests.training.test_trainer import config as trainer_config


def config(tiny_data, out, **kw):
    return trainer_config(tiny_data, out, **{"batch_size": 8, **kw})


def test_step_records_reach_the_disk_as_they_happen(tiny_data, tmp_path):
    run = tmp_path / "live"
    on_disk: list[list[dict]] = []

    def look(event):
        # what a reader (the Train page, the acceptance check) sees right after each step
        if isinstance(event, Step) and event.epoch == 1:
            on_disk.append(runs.read_metrics(run))

    train(config(tiny_data, run, epochs=1, image_size=96), look)
    assert len(on_disk) >= 2
    for k, seen in enumerate(on_disk, 1):
        assert [r["kind"] for r in seen] == ["step"] * k  # this step is there, no epoch yet
        last = seen[-1]
        assert last["step"] == k and 0 < last["epoch"] <= 1
        assert last["images_per_s"] > 0 and last["lr"] > 0 and last["train_loss"] > 0


def test_a_time_budget_that_cannot_be_met_is_said_everywhere(tiny_data, tmp_path):
    run = tmp_path / "budget"
    notes = []
    train(
        config(tiny_data, run, epochs=3, image_size=96, time_budget=1),
        lambda e: notes.append(e.note) if isinstance(e, EpochEnd) else None,
    )
    status = json.loads((run / "status.json").read_text())
    steps = [r for r in runs.read_metrics(run) if r["kind"] == "step"]
    said = (
        f"this machine trained {len(steps)} of {3 * epoch_steps(tiny_data)} planned steps within "
        "the 1 s time budget; expect lower accuracy"
    )
    assert notes[-1] == said and status["step"] == len(steps)
    assert status["status"] == "finished" and status["budget_note"] == said
    assert status["epoch"] == status["planned_epochs"] < status["asked_epochs"] == 3
    info = runs.read_run(run)
    assert (info.epoch, info.epochs, info.note) == (status["epoch"], status["epoch"], said)
    assert info.seconds >= 1  # the run's real duration, not 0


def epoch_steps(tiny_data, batch_size=8) -> int:
    """Steps of one whole epoch over the tiny training slice."""
    return len(crop_rows(open_index(tiny_data["coco"]))) // batch_size


def test_a_slow_machine_trains_the_steps_that_fit_and_ends_its_schedule(
    tiny_data, tmp_path, monkeypatch
):
    # a simulated machine on which every step takes 2 s and nothing else any time: 3 epochs need
    # 3 x full x 2 s, the budget is 40 s. The run does the steps that fit, with the schedule
    # compressed onto them (it used to cut the epochs that did not fit at a high learning rate)
    clock = [0.0]
    monkeypatch.setattr(trainer, "_clock", lambda: clock[0])
    real_step = Session._train_step

    def two_seconds(self, *a):
        clock[0] += 2.0
        return real_step(self, *a)

    monkeypatch.setattr(Session, "_train_step", two_seconds)
    run = tmp_path / "slow"
    train(config(tiny_data, run, epochs=3, image_size=96, time_budget=40))
    full = epoch_steps(tiny_data)
    assert full * 3 * 2 > 40 * 1.5  # the recipe is far from fitting
    status = json.loads((run / "status.json").read_text())
    assert status["epoch"] == status["planned_epochs"] <= 3
    steps = [r for r in runs.read_metrics(run) if r["kind"] == "step"]
    assert 40 * 0.75 <= len(steps) * 2 <= 40 and len(steps) < 3 * full  # most of the budget
    assert steps[-1]["lr"] < 0.05 * max(r["lr"] for r in steps)  # the schedule's end was reached
    assert status["budget_note"] == (
        f"this machine trained {len(steps)} of {3 * full} planned steps within the 40 s time "
        "budget; expect lower accuracy"
    )


def test_alexnet_classic_at_a_smaller_size_reports_what_evaluate_finds(tiny_data, tmp_path):
    from pathlib import Path

    from explorer.coco import open_index
    from explorer.inference.classification import classification_scores, classification_table

    run = tmp_path / "small"
    train(config(tiny_data, run, epochs=1, image_size=96))
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    model = load_model(str(run / "best.pt"), device="cpu")
    # evaluation decodes the crops as training did: resized to 109 (96 x 1.14), centre 96
    assert (model.preprocess.resize, model.preprocess.crop) == (109, 96)
    index = open_index(tiny_data["val_coco"])
    table = classification_table(
        model, Dataset(index, Path(tiny_data["val_images"])), True, options=RunOptions(workers=0)
    )
    scores = classification_scores(model, table, index.categories)
    (epoch,) = [r for r in runs.read_metrics(run) if r["kind"] == "epoch"]
    assert scores["objects"] > 0 and scores["top1"] == pytest.approx(epoch["val_acc"], abs=1e-9)


def test_a_too_small_image_size_is_refused_in_one_line_before_any_work(tiny_data, tmp_path):
    import subprocess

    t0 = time.perf_counter()
    cmd = train_command(tiny_data, tmp_path / "tiny", "--task", "classify")
    r = subprocess.run(
        [*cmd, "--model", "alexnet-classic", "--image-size", "32"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "error: alexnet-classic needs --image-size 39 or more "
        "(got 32: its pools would leave nothing)"
    ]
    assert not (tmp_path / "tiny").exists() and time.perf_counter() - t0 < 60
    with pytest.raises(ExplorerError, match="needs --image-size 39"):
        config(tiny_data, tmp_path / "x", image_size=38).resolved()


def _run_folder(path, status: dict, lines: list[dict]):
    path.mkdir()
    (path / "config.json").write_text(
        json.dumps({"settings": {"task": "classify", "model": "m", "epochs": 8}, "device": "cpu"})
    )
    (path / "status.json").write_text(json.dumps(status))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_runs_table_knows_the_epoch_under_way_and_real_durations(tmp_path):
    now = time.time()
    step = {"kind": "step", "epoch": 1.25, "step": 5, "train_loss": 1.0, "time": now - 5}
    running = _run_folder(
        tmp_path / "a",
        {"status": "running", "epoch": 1, "planned_epochs": 8, "started": now - 100},
        [{"kind": "epoch", "epoch": 1, "step": 4, "elapsed": 80.0}, step],
    )
    info = runs.read_run(running, now=now)
    assert (info.status, info.epoch, info.epochs) == ("running", 2, 8)
    assert info.seconds == pytest.approx(100, abs=1)  # still counting
    stopped = _run_folder(
        tmp_path / "b",
        {"status": "stopped", "epoch": 0, "planned_epochs": 8, "started": now - 50, "seconds": 42},
        [step],
    )
    (stopped / "last.pt").write_bytes(b"")
    info = runs.read_run(stopped, now=now)
    # stopped before its first epoch ended: its duration is still known, and it can go on
    assert (info.status, info.epoch, info.seconds, info.resumable) == ("stopped", 0, 42, True)
