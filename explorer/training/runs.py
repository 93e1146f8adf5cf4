"""Run folders, written and read in one place.

A run folder holds the files of :data:`RUN_FILES` (checkpoints written atomically, loadable by
the model registry).

Curves are long pandas tables with columns ``run``, ``metric``, ``step``, ``epoch``, ``wall``
(seconds since the run's start) and ``value``, whatever their source (a run folder, TensorBoard
logs or a CSV trained elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict

import numpy as np

from explorer.errors import ExplorerError, StorageError
from explorer.paths import (
    atomic_file,
    atomic_write_bytes,
    atomic_write_json,
    storage_guard,
    work_dir,
)
from explorer.types import JobStatus

if TYPE_CHECKING:
    from explorer.models.weights import Checkpoint
    from explorer.training.events import EpochRecord, StepRecord
    from explorer.training.settings import TrainSettings


class RunStatus(TypedDict):
    """``status.json``: where a run stands (rewritten after every epoch and at its end)."""

    status: JobStatus
    message: str
    epoch: int
    planned_epochs: int
    asked_epochs: int
    budget_note: str
    started: float
    seconds: float
    step: int
    best: float
    best_epoch: int
    metric: str
    updated: NotRequired[float]


class DatasetRecord(TypedDict):
    """``config.json``'s ``dataset``: which files a run trained and validated on."""

    train: str
    train_fingerprint: str
    val: str
    val_fingerprint: str
    train_images: int
    val_images: int


class RunConfig(TypedDict):
    """``config.json``: every setting of a run and what it was trained on, written once."""

    settings: dict[str, Any]
    dataset: DatasetRecord
    class_names: list[str]
    category_ids: list[int | None]
    device: str
    world_size: int
    versions: dict[str, str]
    notes: list[str]
    created: float


RUN_FILES: dict[str, str] = {
    "best.pt": "the model: the best epoch's weights, no optimiser state (what the model "
    "pickers and --model RUN_DIR use)",
    "last.pt": "where Resume continues: the latest weights with the optimiser state (twice the "
    "weights' size); a finished run keeps only its last epoch's weights here, and no last.pt "
    "when that epoch is best.pt's",
    "metrics.jsonl": "the curves: one line per training step, one per epoch",
    "events.out.tfevents.*": "the same curves for TensorBoard (tensorboard --logdir RUN_DIR)",
    "config.json": "every setting, the dataset's fingerprints, class names, versions, device",
    "status.json": "where the run stands (running, finished, stopped, failed) and why",
}
"""What each file of a run folder is for (the Train page and the README say it)."""


STEP_LOSS = "train_loss_step"
"""The per-step training loss, by the name the curves give it whatever their source."""

_KNOWN_TAGS = {"train/loss_step": STEP_LOSS}
"""TensorBoard tags of this project's runs (:class:`RunLogs`) -> the curves' names;
``epoch/<name>`` is ``<name>``."""


def runs_root() -> Path:
    """The folder of trained runs: the user's work, not the cache (see ``paths.work_dir``)."""
    return work_dir("runs")


def default_out(task: str, model: str) -> Path:
    """A new run folder's path: ``<work>/runs/<time>-<task>-<model>``."""
    return runs_root() / f"{time.strftime('%Y%m%d-%H%M%S')}-{task}-{model}"


def save_checkpoint(obj: Checkpoint, path: Path) -> None:
    """torch.save through a temporary name: a crash never leaves half a checkpoint; Ctrl-C or
    SIGTERM (torchrun stopping its workers) waits until it is written, so the epoch is kept
    and the run ends "stopped", not torn."""
    import torch

    with _signals_held(), atomic_file(path) as f:
        torch.save(obj, f)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM noted instead of acted on, then raised again when the block ends (in
    the main thread, where Python runs its handlers; any thread may receive the signal, so
    masking one thread is not enough)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # Python handles signals in the main thread only
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if received:
            signal.raise_signal(received[0])


def write_status(run: Path, status: RunStatus) -> None:
    """Write ``status.json``; an end status ("failed", "stopped", ...) is written even on a full
    disk, so that a run that ended never stays "running".

    Raises:
        StorageError: the disk is full (an end status: not even the in-place write fitted).
    """
    body: RunStatus = {**status, "updated": time.time()}
    try:
        atomic_write_json(run / "status.json", body)
    except StorageError:
        if status.get("status") == "running":
            raise
        # no room for a temporary: overwrite in place, which frees the old file's blocks first
        # (torn by a kill at this moment it reads as "unknown", never as "running")
        with storage_guard(run):
            (run / "status.json").write_text(json.dumps(body, indent=1))


def write_config(run: Path, config: RunConfig) -> None:
    atomic_write_json(run / "config.json", config)


class RunLogs:
    """``metrics.jsonl`` and TensorBoard, written side by side (a full disk: StorageError).

    ``purge_step``: a resumed run's step, from which TensorBoard forgets what the killed run
    wrote after its last checkpoint.
    """

    def __init__(self, run: Path, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.run = run
        with storage_guard(run):
            self.writer = SummaryWriter(str(run), purge_step=purge_step)
            self.metrics = open(run / "metrics.jsonl", "a")

    def step(self, record: StepRecord) -> None:
        # flushed (not fsynced) line by line: the live curves read the file while the run writes
        with storage_guard(self.run):
            self.metrics.write(json.dumps(record) + "\n")
            self.metrics.flush()
            self.writer.add_scalar("train/loss_step", record["train_loss"], record["step"])

    def epoch(self, record: EpochRecord) -> None:
        with storage_guard(self.run):
            self.metrics.write(json.dumps(record) + "\n")
            self.metrics.flush()
            for k, v in record.items():
                if k.startswith(("train_", "val_")):
                    self.writer.add_scalar(f"epoch/{k}", v, record["step"])
            self.writer.flush()

    def close(self) -> None:
        with storage_guard(self.run):
            try:
                self.metrics.close()
            finally:
                self.writer.close()


class NoLogs(RunLogs):
    """What the processes other than rank 0 write: nothing."""

    def __init__(self) -> None:
        pass

    def step(self, record: StepRecord) -> None:
        pass

    def epoch(self, record: EpochRecord) -> None:
        pass

    def close(self) -> None:
        pass


def cut_metrics(run: Path, step: int, epoch: int) -> None:
    """Keep the metrics.jsonl lines up to ``step`` and the epoch lines up to ``epoch`` (a resumed
    run continues an unbroken history from its last checkpoint, which may lie within an epoch);
    torn lines go too."""
    kept = [
        r
        for r in read_metrics(run)
        if r["step"] <= step and (r.get("kind") != "epoch" or r.get("epoch", 0) <= epoch)
    ]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    atomic_write_bytes(run / "metrics.jsonl", text.encode())


def versions() -> dict:
    import torch
    import torchvision

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
    }


@dataclass(frozen=True)
class RunInfo:
    """What the runs table shows of one run folder.

    ``epoch`` is the epoch under way while the run is running (the last finished one once it
    ended), ``epochs`` the plan (fewer than asked when the time budget cut it: ``note`` says so),
    ``seconds`` the time it has trained so far, over all its resumptions.
    """

    path: Path
    task: str
    model: str
    status: str
    message: str
    epoch: int
    epochs: int
    best_metric: str
    best: float | None
    seconds: float
    device: str
    has_best: bool
    note: str = ""
    resumable: bool = False


def read_run(path: Path, now: float | None = None) -> RunInfo | None:
    """A run folder's summary, or None when ``path`` is not a run."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    status = read_status(path)
    settings = config.get("settings", {})
    state = status.get("status", "unknown")
    last = _last_record(path)
    epoch = int(status.get("epoch", 0))
    if state == "running" and last is not None:
        epoch = max(epoch, math.ceil(last.get("epoch", 0)))  # the epoch under way
    best = status.get("best")
    return RunInfo(
        path=path,
        task=settings.get("task", "?"),
        model=settings.get("model", "?"),
        status=state,
        message=status.get("message", ""),
        epoch=epoch,
        epochs=int(status.get("planned_epochs") or settings.get("epochs") or 0),
        best_metric=status.get("metric", ""),
        best=best if best is not None and best >= 0 else None,
        seconds=_seconds(status, last, now or time.time()),
        device=config.get("device", ""),
        has_best=(path / "best.pt").is_file(),
        note=status.get("budget_note", ""),
        resumable=state in ("stopped", "failed") and (path / "last.pt").is_file(),
    )


def _seconds(status: dict, last: dict | None, now: float) -> float:
    """Training time: still counting while running, the recorded total once ended (older runs:
    the last record's time since the start)."""
    if status.get("status") == "running" and status.get("started"):
        return max(0.0, now - float(status["started"]))
    if status.get("seconds") is not None:
        return float(status["seconds"])
    if last is not None and status.get("started"):
        return max(0.0, float(last.get("time", 0)) - float(status["started"]))
    return float(last.get("elapsed", 0.0)) if last else 0.0


def _last_record(path: Path, tail: int = 4096) -> dict | None:
    """The last whole line of metrics.jsonl, read from its end (a long run's file is large)."""
    try:
        with open(path / "metrics.jsonl", "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return json.loads(line)
        except ValueError:
            continue  # a torn last line, or the cut first one of the tail
    return None


def read_status(run: Path) -> dict[str, Any]:
    """``status.json`` as the run wrote it (a run of an older version may lack newer keys):
    {} when the run has none, or it is not readable."""
    try:
        status = json.loads((run / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def trained_seconds(run: Path) -> float:
    """The seconds a run has trained so far (0 when its status does not say)."""
    try:
        return float(read_status(run).get("seconds") or 0)
    except (ValueError, TypeError):
        return 0.0


def read_config(run: Path) -> TrainSettings:
    """The settings a run folder was started with (its ``config.json``'s, resolved when it
    started; a setting added since then takes :class:`~explorer.training.config.TrainConfig`'s
    default)."""
    from dataclasses import asdict, fields

    from explorer.training.config import TrainConfig
    from explorer.training.settings import TrainSettings

    try:
        saved = json.loads((run / "config.json").read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ExplorerError(f"{run}: not a run folder (no readable config.json)") from None
    try:
        asked = TrainConfig(
            **{f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved}
        )
        return TrainSettings(**asdict(asked))
    except TypeError as e:  # a setting that is always decided is missing or null
        raise ExplorerError(f"{run}: a damaged config.json ({e})") from None


def read_class_names(run: Path) -> list[str]:
    """The class names a run trains (its ``config.json``'s ``class_names``, a segmenter's
    background first); [] when the file is unreadable or holds no list of names."""
    try:
        names = json.loads((run / "config.json").read_text()).get("class_names")
    except (OSError, ValueError, AttributeError, RecursionError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def list_runs(root: Path | None = None) -> list[RunInfo]:
    """Every run under ``root`` (default: :func:`runs_root`), newest first."""
    root = root or runs_root()
    found = (
        [read_run(p) for p in sorted(root.iterdir(), reverse=True) if p.is_dir()]
        if root.is_dir()
        else []
    )
    return [r for r in found if r is not None]


def trained_checkpoints(task: str, root: Path | None = None) -> list[RunInfo]:
    """Runs of a task with a best.pt: what the model pickers offer."""
    return [r for r in list_runs(root) if r.task == task and r.has_best]


def read_metrics(path: Path) -> list[dict]:
    """The lines of a run's metrics.jsonl (a torn last line, as after a kill, is skipped)."""
    out: list[dict] = []
    try:
        text = (path / "metrics.jsonl").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def run_curves(path: Path, name: str | None = None):
    """A run's curves (per-step train loss, per-epoch metrics) as a long table."""
    import pandas as pd

    rows = read_metrics(path)
    if not rows:
        return pd.DataFrame(columns=["run", "metric", "step", "epoch", "wall", "value"])
    t0 = min(r.get("time", 0) for r in rows)
    records = []
    for r in rows:
        metrics = (
            ["train_loss"]
            if r.get("kind") == "step"
            else [k for k in r if k.startswith(("train_", "val_"))]
        )
        for m in metrics:
            label = STEP_LOSS if r.get("kind") == "step" else m
            records.append(
                {
                    "run": name or path.name,
                    "metric": label,
                    "step": r["step"],
                    "epoch": r["epoch"],
                    "wall": r.get("time", t0) - t0,
                    "value": r[m],
                }
            )
    return pd.DataFrame.from_records(records)


def curve_name(tag: str) -> str:
    """The curves' name of a TensorBoard tag this project writes (others are kept as they are),
    so that an imported run draws beside the runs of this app."""
    if tag in _KNOWN_TAGS:
        return _KNOWN_TAGS[tag]
    head, _, tail = tag.partition("/")
    return tail if head == "epoch" and tail.startswith(("train_", "val_")) else tag


def import_tensorboard(logdir: str | Path, name: str | None = None):
    """Scalar curves of a TensorBoard log folder (event files inside it or its subfolders); this
    project's own tags are named as in a run folder (:func:`curve_name`).

    Raises:
        ExplorerError: the folder does not exist, is not a folder, or holds no scalars.
    """
    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = Path(logdir).expanduser()
    if not logdir.exists():
        raise ExplorerError(f"{logdir}: no such folder")
    if not logdir.is_dir():
        raise ExplorerError(f"{logdir}: not a folder (give a TensorBoard log folder or a .csv)")
    files = sorted(logdir.rglob("events.out.tfevents.*"))
    if not files:
        raise ExplorerError(f"{logdir}: no TensorBoard event files inside")
    records = []
    for folder in sorted({f.parent for f in files}):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags().get("scalars", []):
            events = acc.Scalars(tag)
            t0 = events[0].wall_time if events else 0
            # a subfolder is a run of its own (TensorBoard's view of a log folder)
            run = name or logdir.name
            if folder != logdir:
                run = f"{run}/{folder.relative_to(logdir)}"
            records += [
                {
                    "run": run,
                    "metric": curve_name(tag),
                    "step": e.step,
                    "epoch": np.nan,
                    "wall": e.wall_time - t0,
                    "value": e.value,
                }
                for e in events
            ]
    if not records:
        raise ExplorerError(f"{logdir}: the event files hold no scalars")
    return pd.DataFrame.from_records(records)


def import_csv(path: str | Path, name: str | None = None):
    """Curves from a CSV: a ``step`` (or ``epoch``) column and one column per metric, or a long
    table with ``metric`` and ``value`` columns."""
    import pandas as pd

    path = Path(path).expanduser()
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise ExplorerError(f"{path}: not a readable CSV ({e})") from None
    cols = {c.lower(): c for c in df.columns}
    x = cols.get("step") or cols.get("epoch")
    if x is None:
        raise ExplorerError(f"{path}: needs a 'step' or 'epoch' column")
    ids = [x] + ([cols["epoch"]] if "epoch" in cols and cols["epoch"] != x else [])
    if "metric" in cols and "value" in cols:
        long = df.rename(columns={cols["metric"]: "metric", cols["value"]: "value"})
    else:
        metrics = [c for c in df.columns if c not in ids and pd.api.types.is_numeric_dtype(df[c])]
        if not metrics:
            raise ExplorerError(f"{path}: no numeric metric columns")
        long = df.melt(id_vars=ids, value_vars=metrics, var_name="metric", value_name="value")
    long = long.rename(columns={x: "step", **({ids[1]: "epoch"} if len(ids) > 1 else {})})
    if "epoch" not in long:
        long["epoch"] = long["step"] if x == cols.get("epoch") else np.nan
    long["run"] = name or path.stem
    long["wall"] = np.nan
    return long[["run", "metric", "step", "epoch", "wall", "value"]].dropna(subset=["value"])
