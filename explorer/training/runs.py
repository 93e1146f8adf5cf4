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
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Any,
    Literal,
    NotRequired,
    TypedDict,
    Union,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import numpy as np

from explorer.errors import ExplorerError, StorageError
from explorer.paths import (
    atomic_file,
    atomic_write_bytes,
    atomic_write_json,
    open_regular,
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
    "weights' size); a finished run keeps only its last epoch's weights here (the same file as "
    "best.pt, hard-linked, when that epoch is the best)",
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


DAMAGED = "damaged"
"""The status of a run folder whose ``config.json`` cannot be read: listed, never loaded."""


def read_run(path: Path, now: float | None = None) -> RunInfo | None:
    """A run folder's summary, or None when ``path`` is not a run (it has no ``config.json``).

    Every field is read with its type checked: a ``config.json`` that is not a run's shows the
    run as :data:`DAMAGED` (its message says why), a field of ``status.json`` of the wrong type
    reads as absent, and metrics lines that are not a run's are skipped.
    """
    if not (path / "config.json").exists():
        return None
    try:
        config = _conforming(_read_json(path / "config.json"), RunConfig)
    except (OSError, ValueError) as e:
        return _damaged_run(path, f"config.json: {e}")
    settings = config.get("settings", {})
    status, bad = _status_fields(path)
    state = status.get("status", "unknown")
    last = _last_record(path)
    epoch = status.get("epoch", 0)
    if state == "running" and last is not None:
        epoch = max(epoch, math.ceil(last["epoch"]))  # the epoch under way
    best = status.get("best")
    planned = status.get("planned_epochs") or _setting(settings, "epochs", int) or 0
    message = status.get("message", "")
    return RunInfo(
        path=path,
        task=_setting(settings, "task", str) or "?",
        model=_setting(settings, "model", str) or "?",
        status=state,
        message=f"{message} (status.json: {', '.join(bad)} unreadable)" if bad else message,
        epoch=epoch,
        epochs=planned,
        best_metric=status.get("metric", ""),
        best=best if best is not None and best >= 0 else None,
        seconds=_seconds(status, last, now or time.time()),
        device=config.get("device", ""),
        has_best=(path / "best.pt").is_file(),
        note=status.get("budget_note", ""),
        resumable=state in ("stopped", "failed") and (path / "last.pt").is_file(),
    )


def _damaged_run(path: Path, why: str) -> RunInfo:
    return RunInfo(
        path=path,
        task="?",
        model="?",
        status=DAMAGED,
        message=why,
        epoch=0,
        epochs=0,
        best_metric="",
        best=None,
        seconds=0.0,
        device="",
        has_best=False,
    )


def _setting(settings: dict[str, Any], name: str, kind: type) -> Any:
    """A setting of ``config.json`` when it has the type ``kind`` (else None)."""
    value = settings.get(name)
    return value if _fits(value, kind) else None


def _seconds(status: dict, last: dict | None, now: float) -> float:
    """Training time: still counting while running, the recorded total once ended (older runs:
    the last record's time since the start). ``status`` and ``last`` are type-checked."""
    if status.get("status") == "running" and status.get("started"):
        return max(0.0, now - status["started"])
    if status.get("seconds") is not None:
        return float(status["seconds"])
    if last is not None and status.get("started"):
        return max(0.0, last.get("time", 0.0) - status["started"])
    return float(last.get("elapsed", 0.0)) if last else 0.0


def _last_record(path: Path, tail: int = 4096) -> dict | None:
    """The last valid line of metrics.jsonl (see :func:`metrics_line`), read from its end (a
    long run's file is large)."""
    try:
        with open_regular(path / "metrics.jsonl") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        record = metrics_line(line)
        if record is not None:
            return record  # else a torn last line, the cut first one of the tail, or damage
    return None


MAX_JSON_BYTES = 16 << 20  # config.json and status.json are a few kB; more is not a run's


def _read_json(path: Path) -> Any:
    """The JSON document of a run's file.

    Raises:
        OSError: unreadable (absent, a folder, a pipe, ...).
        ValueError: not JSON, too large, or nested too deeply to read.
    """
    with open_regular(path) as f:
        data = f.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise ValueError(f"over {MAX_JSON_BYTES >> 20} MB")
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as e:
        raise ValueError(f"not JSON ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    return str(e).splitlines()[0][:120] if str(e).strip() else e.__class__.__name__


def _conforming(doc: Any, shape: Any) -> dict[str, Any]:
    """The fields of ``doc`` (a JSON object read as the TypedDict ``shape``) whose values have
    their declared types; the others are left out, read as absent.

    Raises:
        ValueError: ``doc`` is not a JSON object.
    """
    if not isinstance(doc, dict):
        raise ValueError(f"not a JSON object but {_json_type(doc)}")
    hints = get_type_hints(shape)
    return {k: v for k, v in doc.items() if k in hints and _fits(v, hints[k])}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type ``hint`` (of a TypedDict field). Numbers must be
    finite (``1e400`` reads as infinity) and within int64; a bool is not a number."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if hint is float:
        return _fits(value, int) or (isinstance(value, float) and math.isfinite(value))
    if hint is int:  # within int64: a run writes nothing larger
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if hint is str:
        return isinstance(value, str)
    if hint is type(None):
        return value is None
    if origin is Literal:
        return isinstance(value, str | int) and value in args
    if origin in (Union, UnionType):
        return any(_fits(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(v, args[1]) for v in value.values())
    if is_typeddict(hint):
        return isinstance(value, dict) and len(_conforming(value, hint)) == len(value)
    return False


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _status_fields(run: Path) -> tuple[dict[str, Any], list[str]]:
    """``status.json``'s fields of the right types, and the names of those of a wrong one."""
    try:
        doc = _read_json(run / "status.json")
    except (OSError, ValueError):
        return {}, []
    if not isinstance(doc, dict):
        return {}, []
    good = _conforming(doc, RunStatus)
    return good, [k for k in doc if k not in good and k in get_type_hints(RunStatus)]


def read_status(run: Path) -> dict[str, Any]:
    """``status.json`` as the run wrote it (a run of an older version may lack newer keys):
    {} when the run has none, or it is not readable; a field of the wrong type (a string epoch,
    ``1e400``) is left out."""
    return _status_fields(run)[0]


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
        saved = _read_json(run / "config.json")["settings"]
        if not isinstance(saved, dict):
            raise TypeError
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
    """The valid lines of a run's metrics.jsonl (see :func:`metrics_line`; a torn last line, as
    after a kill, is skipped, and so is a damaged one)."""
    return read_metrics_file(path).records


@dataclass(frozen=True)
class MetricsFile:
    """A run's metrics.jsonl as read: its valid lines and how many others were skipped."""

    records: list[dict]
    skipped: int = 0


def read_metrics_file(path: Path) -> MetricsFile:
    """The lines of a run's metrics.jsonl that are a run's records, and a count of the others
    (torn, not JSON, not an object, without a whole number ``step``, ...)."""
    try:
        with open_regular(path / "metrics.jsonl") as f:
            lines = f.read().splitlines()
    except OSError:
        return MetricsFile([])
    records = [metrics_line(line) for line in lines if line.strip()]
    kept = [r for r in records if r is not None]
    return MetricsFile(kept, len(records) - len(kept))


def metrics_line(line: bytes | str) -> dict | None:
    """One metrics.jsonl line as a record, or None when it is not one: a JSON object with a
    ``kind`` (step / epoch), a whole number ``step``, a finite ``epoch`` (and ``time``,
    ``elapsed`` when present), and numbers for its ``train_*`` and ``val_*`` metrics (NaN
    allowed: a diverged loss is a result)."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or record.get("kind") not in ("step", "epoch"):
        return None
    if not (_fits(record.get("step"), int) and _fits(record.get("epoch"), float)):
        return None
    if any(k in record and not _fits(record[k], float) for k in ("time", "elapsed")):
        return None
    metrics = [v for k, v in record.items() if k.startswith(("train_", "val_"))]
    if not all(isinstance(v, float) or _fits(v, int) for v in metrics):
        return None
    return record


def run_curves(path: Path, name: str | None = None):
    """A run's curves (per-step train loss, per-epoch metrics) as a long table; its
    ``attrs["skipped_lines"]`` counts the metrics.jsonl lines that were not a run's records."""
    import pandas as pd

    read = read_metrics_file(path)
    rows = read.records
    if not rows:
        empty = pd.DataFrame(columns=["run", "metric", "step", "epoch", "wall", "value"])
        empty.attrs["skipped_lines"] = read.skipped
        return empty
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
    curves = pd.DataFrame.from_records(records)
    curves.attrs["skipped_lines"] = read.skipped  # damaged metrics.jsonl lines left out
    return curves


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
