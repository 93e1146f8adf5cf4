"""The app's job queue runs a job under torchrun (two gloo processes here; one per GPU on a
machine with several) and follows it like a one-process job."""

from __future__ import annotations

import time

from explorer.training import TrainConfig, runs
from explorer.training.jobs import JobQueue


def test_a_two_process_job_trains_and_reports_its_epochs(tiny_data, tmp_path):
    queue = JobQueue()
    cfg = TrainConfig(
        task="classify",
        model="alexnet-classic",
        out=str(tmp_path / "run"),
        device="cpu",
        epochs=2,
        image_size=64,
        batch_size=4,
        workers=0,
        **tiny_data,
    ).resolved()
    job_id = queue.submit(cfg, processes=2)
    end = time.monotonic() + 600
    while (job := _job(queue, job_id)).status in ("queued", "running"):
        assert time.monotonic() < end
        time.sleep(0.5)
    assert job.status == "finished", job.message
    assert job.last is not None and job.last["epoch"] == 2
    assert runs.read_config(tmp_path / "run").model == "alexnet-classic"
    assert [r["epoch"] for r in runs.read_metrics(tmp_path / "run") if r["kind"] == "epoch"] == [
        1,
        2,
    ]


def _job(queue: JobQueue, job_id: int):
    return next(j for j in queue.snapshot() if j.id == job_id)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    from explorer.training.jobs import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,3")
    assert visible_gpus() == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert visible_gpus() == 0
