"""The Train page's pieces: the runs table, the progress line of a job, the curves of runs (read
again only when their metrics.jsonl changed) and the poller's rules.

The worker thread (:mod:`explorer.training.jobs`) never calls Streamlit: it updates the job
registry and writes the run folder. The page's fragment reads the registry, and polls only while a
job is queued or running, so an idle page costs nothing; it redraws the runs table and the curves
only when :func:`board_stamp` says the jobs moved on, not at every poll.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer.training import runs
from explorer.training.events import EpochEnd, Loading, Preparing, Step
from explorer.training.jobs import Job

POLL_SECONDS = 2.0
"""How often the page reads the job registry while a job is active (only the progress lines are
drawn again each time)."""

REDRAWS_PER_EPOCH = 4
"""How often the curves move within an epoch, at most (and at its first step and its end)."""

STEP_LOSS = runs.STEP_LOSS
"""The default curve: it moves from the first step on (an epoch metric of a 1-epoch run is two
dots)."""


def duration(seconds: float) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``42 s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


def runs_table(infos: list[runs.RunInfo]) -> pd.DataFrame:
    """One row per run: where it stands (epoch under way / planned), how long it trained, its
    best score and why it stopped early (the time budget) or failed."""
    return pd.DataFrame(
        [
            {
                "run": r.path.name,
                "status": r.status,
                "epoch": f"{r.epoch}/{r.epochs}",
                "duration": duration(r.seconds),
                "size": f"{folder_bytes(r.path) / 1e6:.0f} MB",  # what a run costs on disk
                "best": r.best,
                "metric": r.best_metric,
                "model": r.model,
                "task": r.task,
                "note": r.note if r.status in ("running", "finished") else r.message,
                "device": r.device,
            }
            for r in infos
        ]
    )


def folder_bytes(path: Path) -> int:
    """The bytes of a run folder's files (0 for what cannot be read)."""
    total = 0
    try:
        for entry in path.iterdir():
            try:
                if entry.is_file() and not entry.is_symlink():
                    total += entry.stat().st_size
            except OSError:
                continue
    except OSError:
        return 0
    return total


def run_files_table() -> pd.DataFrame:
    """What each file of a run folder is for."""
    return pd.DataFrame(
        {"file": list(runs.RUN_FILES), "what it is for": list(runs.RUN_FILES.values())}
    )


def board_stamp(jobs: Sequence[Job]) -> tuple[Hashable, ...]:
    """What the runs table and the curves depend on, coarsely: it changes when a job is queued,
    starts, ends, takes its first step, gets a quarter of an epoch further or ends an epoch, and
    not at every poll (the progress lines say the rest)."""
    return tuple((j.id, j.status, j.run_dir, _progress_stamp(j)) for j in jobs)


def _progress_stamp(job: Job) -> Hashable:
    p = job.progress
    if isinstance(p, Step):
        return ("step", p.epoch, p.batch * REDRAWS_PER_EPOCH // max(p.batches, 1))
    if isinstance(p, EpochEnd):
        return ("epoch", p.epoch)
    return "preparing"


def metric_selection(
    picked: list[str] | None, metrics: list[str], imported: list[str]
) -> list[str]:
    """The curves to draw: the user's picks that still exist (before any pick, the per-step
    loss or the first metric), plus the metrics of curves just imported, so that an import is
    drawn at once."""
    chosen = [m for m in picked if m in metrics] if picked is not None else default_metrics(metrics)
    return chosen + [m for m in imported if m in metrics and m not in chosen]


def job_line(job: Job) -> tuple[float, str]:
    """A job's progress as (fraction done, text)."""
    p = job.progress
    head = f"#{job.id} {job.config.model}"
    if isinstance(p, Step):
        last: Mapping[str, object] = job.last or {}
        score = "".join(f", {k} {last[k]:.3f}" for k in ("val_acc", "val_miou") if k in last)
        done = (p.epoch - 1 + p.batch / p.batches) / p.epochs
        text = f"{head}: epoch {p.epoch}/{p.epochs}, batch {p.batch}/{p.batches}, loss {p.loss:.3f}"
        return min(done, 1.0), text + score
    if isinstance(p, EpochEnd):
        return min(p.epoch / max(p.epochs, 1), 1.0), f"{head}: epoch {p.epoch}/{p.epochs} done"
    if isinstance(p, Loading):
        return p.done / max(p.total, 1), f"{head}: {p.phase} ({p.done}/{p.total})"
    if isinstance(p, Preparing):
        return 0.0, f"{head}: {p.phase}"
    return 0.0, f"{head}: starting (loading torch, the data and the model)"


def run_curves(names: list[str], root: Path | None = None) -> pd.DataFrame:
    """The curves of the named runs in one long table (see :func:`runs.run_curves`)."""
    root = root or runs.runs_root()
    frames = [_curves(str(root / n), *_stamp(root / n / "metrics.jsonl")) for n in names]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _stamp(path: Path) -> tuple[int, int]:
    try:
        st_ = path.stat()
    except OSError:
        return 0, 0
    return st_.st_mtime_ns, st_.st_size


@st.cache_data(max_entries=64, show_spinner=False)
def _curves(run: str, mtime_ns: int, size: int) -> pd.DataFrame:
    # keyed by the file's stamp: a poll re-reads a run only after it wrote a line
    return runs.run_curves(Path(run))


def default_metrics(metrics: list[str]) -> list[str]:
    """The curves shown before the user picks: the per-step loss, else the first metric."""
    return [STEP_LOSS] if STEP_LOSS in metrics else metrics[:1]


def watched(
    picked: list[str] | None, names: list[str], active: list[str], followed: frozenset[str]
) -> tuple[list[str], frozenset[str]]:
    """The runs whose curves to show, and the active runs already followed.

    The user's picks that still exist; before any pick, the three newest runs. A run that
    becomes active is added once, when it first appears (removing it afterwards sticks).
    """
    watch = [n for n in picked if n in names] if picked is not None else names[:3]
    new = [n for n in active if n in names and n not in followed]
    return watch + [n for n in new if n not in watch], followed | frozenset(new)


def needs_full_rerun(polling: bool, busy: bool) -> bool:
    """Whether the page must rerun in full: it polls while a job is active and must stop once
    none is (a fragment's ``run_every`` is fixed until the next full run)."""
    return polling != busy
