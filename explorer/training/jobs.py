"""Background training jobs for the app: a queue worked by one thread that never calls Streamlit.

Pages submit jobs and read snapshots; a ``st.fragment(run_every=...)`` polls them. Jobs run one
at a time (training uses every core), in submission order.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from explorer.errors import ExplorerError, Stopped
from explorer.training.config import TrainConfig
from explorer.training.events import EpochEnd, EpochRecord, Event, is_epoch_record
from explorer.training.settings import TrainSettings
from explorer.types import JobStatus


@dataclass
class Job:
    """One queued or finished training run, as the Train page shows it.

    ``progress`` is the run's latest event (None before the first); ``last`` the record of its
    latest finished epoch.
    """

    id: int
    config: TrainConfig | TrainSettings  # as asked, or already resolved (the Train page's)
    resume: str | None = None  # a run folder to continue (its own settings are used)
    processes: int = 1  # more: torchrun, one process per GPU
    status: JobStatus = "queued"
    message: str = ""
    run_dir: str = ""
    progress: Event | None = None
    last: EpochRecord | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    dismissed: bool = False  # its end is no longer worth a notice


class JobQueue:
    """Thread-safe job registry; one worker thread, started on the first submit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._wake = threading.Event()
        self._worker: threading.Thread | None = None

    def submit(
        self, config: TrainConfig | TrainSettings, resume: str | None = None, processes: int = 1
    ) -> int:
        """Queue a run (``resume``: continue that run folder; ``processes`` > 1: under torchrun,
        one process per GPU); returns the job's id.

        Only cheap work happens here, in the caller's (the page's) thread: torch, the model and
        the data are loaded by the worker."""
        with self._lock:
            job = Job(next(self._ids), config, resume, processes, run_dir=resume or "")
            self._jobs[job.id] = job
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._work, name="explorer-train", daemon=True
                )
                self._worker.start()
        self._wake.set()
        return job.id

    def stop(self, job_id: int) -> bool:
        """Stop a running job after its current step, or take a queued one off the queue
        (returns True then: nothing ran, so no notice stays for it)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            job.stop.set()
            if job.status != "queued":
                return False
            job.status, job.message, job.finished = "stopped", "removed from the queue", time.time()
            job.dismissed = True
            return True

    def dismiss(self, job_id: int) -> None:
        """The user has read how the job ended: its notice goes."""
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id].dismissed = True

    def notices(self) -> list[Job]:
        """The ended jobs (failed or stopped) whose end is still news, newest first: not
        dismissed, and not superseded by a later job on the same run folder (a stop notice
        goes once the run is resumed)."""
        with self._lock:
            later = sorted(self._jobs.values(), key=lambda j: -j.id)
            notices, seen_runs = [], set()
            for j in later:
                superseded = bool(j.run_dir) and j.run_dir in seen_runs
                seen_runs.add(j.run_dir)
                if j.status in ("failed", "stopped") and not j.dismissed and not superseded:
                    notices.append(replace(j))
            return notices

    def snapshot(self) -> list[Job]:
        """Copies of every job, newest first (safe to read without the lock)."""
        with self._lock:
            return [replace(j) for j in sorted(self._jobs.values(), key=lambda j: -j.id)]

    def busy(self) -> bool:
        with self._lock:
            return any(j.status in ("queued", "running") for j in self._jobs.values())

    def active_runs(self) -> set[str]:
        """The run folders of the queued and running jobs (known once a job has started, or
        from the start for a resumed one)."""
        with self._lock:
            return {
                j.run_dir
                for j in self._jobs.values()
                if j.status in ("queued", "running") and j.run_dir
            }

    def _next(self) -> Job | None:
        with self._lock:
            queued = [j for j in self._jobs.values() if j.status == "queued"]
            if not queued:
                return None
            job = min(queued, key=lambda j: j.id)
            job.status, job.started = "running", time.time()
            return job

    def _update(self, job: Job, event: Event) -> None:
        with self._lock:
            job.progress = event
            if isinstance(event, EpochEnd):
                job.last = event.record
            job.run_dir = event.run

    def _work(self) -> None:
        # the trainer takes every core; at a lower priority (this thread and the torch threads
        # it starts) it leaves the Streamlit server and the page's reruns responsive
        with contextlib.suppress(AttributeError, OSError):  # per-thread priority: Linux
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        from explorer.training.trainer import train  # torch: only once a job runs

        while True:
            job = self._next()
            if job is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                with self._lock:
                    if not any(j.status == "queued" for j in self._jobs.values()):
                        self._worker = None
                        return
                continue
            status: JobStatus = "finished"
            message, run_dir = "", ""
            update = functools.partial(self._update, job)
            try:
                if job.processes > 1:
                    run_dir = _torchrun(job, update)
                else:
                    run_dir = str(train(job.config, update, job.stop, job.resume))
            except Stopped as e:
                status, message = "stopped", str(e)
            except ExplorerError as e:
                status, message = "failed", str(e)
            except Exception as e:  # noqa: BLE001 - a bug must not kill the worker; show it
                status, message = (
                    "failed",
                    f"{e.__class__.__name__}: {e}\n{traceback.format_exc(limit=3)}",
                )
            with self._lock:
                job.status, job.message, job.finished = status, message, time.time()
                job.run_dir = run_dir or job.run_dir


def _torchrun(job: Job, update: Callable[[Event], None]) -> str:
    """Run ``job`` as ``torchrun --nproc_per_node=<processes>`` (one process per GPU) and
    follow its run folder; its Stop sends SIGINT (a resumable stop, as in one process).

    Raises:
        Stopped, ExplorerError: as :func:`~explorer.training.trainer.train` would.
    """
    import dataclasses
    import signal
    import subprocess
    import sys
    import tempfile

    from explorer.training import runs

    cfg = job.config
    run = Path(job.resume or cfg.out or runs.default_out(cfg.task, cfg.model))
    cfg = dataclasses.replace(cfg, out=str(run))
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(dataclasses.asdict(cfg), f)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={job.processes}", "-m", "explorer.training.launch", f.name]
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [*cmd, *([job.resume] if job.resume else [])],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        while proc.poll() is None:
            if job.stop.is_set():
                proc.send_signal(signal.SIGINT)
            _follow(run, update)
            time.sleep(1.0)
        _follow(run, update)
        err.seek(0)
        said = [line for line in err.read().splitlines() if line.startswith(("error:", "stopped:"))]
    Path(f.name).unlink(missing_ok=True)
    if job.stop.is_set() or proc.returncode == 130:
        raise Stopped(said[-1].split(":", 1)[1].strip() if said else "stopped by the user")
    if proc.returncode != 0:
        raise ExplorerError(
            said[-1].split(":", 1)[1].strip() if said else f"torchrun exited {proc.returncode}"
        )
    return str(run)


def _follow(run: Path, update: Callable[[Event], None]) -> None:
    """The run's latest finished epoch, as the event a one-process run would have sent."""
    from explorer.training import runs

    status = runs.read_status(run)
    if not status:
        return
    epochs = [r for r in runs.read_metrics(run) if is_epoch_record(r)]
    if epochs:
        planned = int(status.get("planned_epochs") or epochs[-1]["epoch"])
        note = str(status.get("budget_note", ""))
        update(EpochEnd(str(run), int(epochs[-1]["epoch"]), planned, epochs[-1], note))


def visible_gpus() -> int:
    """How many NVIDIA GPUs this process may use, without importing torch (the Train page
    opens without it): ``CUDA_VISIBLE_DEVICES`` when set, else the driver's list."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return len([d for d in listed.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
