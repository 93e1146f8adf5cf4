"""The trainer: one run's data, model, optimiser, epoch loop, checkpoints and metrics, and
:func:`train`, the entry point the CLI and the app's job queue call.

Read it like torchvision's reference scripts: :meth:`Session.run` loops over
:meth:`Session.train_one_epoch` and :meth:`Session.evaluate`; everything else is bookkeeping
(status, checkpoints, resuming, the time budget). What differs between tasks is asked of the
run's :mod:`~explorer.training.tasks` object; the data split comes from
:func:`~explorer.training.data.train_and_val`, the model from
:func:`~explorer.training.finetune.model_for_run`.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from explorer.errors import ExplorerError, Stopped
from explorer.models import get_spec
from explorer.models.device import choose_device, cpu_threads
from explorer.models.preprocess import Preprocess
from explorer.models.weights import CHECKPOINT_FORMAT, Checkpoint
from explorer.paths import remove_stale_temporaries, temporary_path
from explorer.training import data, distributed, runs
from explorer.training.config import TrainConfig
from explorer.training.distributed import World
from explorer.training.events import (
    EpochEnd,
    EpochRecord,
    Event,
    Loading,
    Preparing,
    Scores,
    Step,
)
from explorer.training.finetune import model_for_run
from explorer.training.plan import (
    Position,
    StepPlan,
    Throughput,
    estimated_val_seconds,
    fit,
    shortfall_note,
)
from explorer.training.settings import TrainSettings
from explorer.training.tasks import StepInputs, train_task
from explorer.types import IGNORE_LABEL, JobStatus

_MEMORY_FORMAT = torch.channels_last
"""Convolutions run faster on NHWC tensors on CPUs and GPUs alike (bench/bench_train.py)."""


_clock: Callable[[], float] = time.perf_counter
"""The clock of step times and of the time budget (a test simulates a slower machine with it)."""

_PROBE_STEPS = 5
"""Steps into each epoch at which the time budget re-plans from the measured step time (the
first step of a run is slow: allocations, kernel choice; the median of the next ones is not)."""


@dataclass
class _EpochPlan:
    """What every step of a run needs to know, set when its data is loaded; the time budget
    lowers ``steps_per_epoch`` (and so compresses the schedule) on a slow machine."""

    full_steps: int  # one pass over the training examples
    steps_per_epoch: int
    schedule: Callable[[float, int, int, int], float]
    warmup: int
    class_weights: torch.Tensor | None


class _EpochDone(NamedTuple):
    """What one (maybe resumed) pass over the training set measured."""

    losses: list[float]  # every step's of the epoch, those before a stop included
    lr: float
    batches: int  # trained in this process's pass (fewer than the epoch's when resumed)


@dataclass(frozen=True)
class _WithinEpoch:
    """How far a stopped epoch got (``last.pt``'s ``within_epoch``): a resumed run continues
    that epoch at the next batch, with the same example order and random state (on a CPU the
    steps are then the ones an unstopped run takes)."""

    batch: int  # batches done
    losses: list[float]
    generator: torch.Tensor  # the epoch generator's state after them (augmentation)
    torch_rng: torch.Tensor  # torch's own CPU generator's (dropout)

    def record(self) -> dict:
        return {
            "batch": self.batch,
            "losses": self.losses,
            "generator": self.generator,
            "torch_rng": self.torch_rng,
        }


class _StepDone(NamedTuple):
    """What one optimiser step measured."""

    loss: float
    lr: float
    images_per_s: float


@dataclass(frozen=True)
class RunControl:
    """How a run is watched and stopped: ``progress`` gets each
    :mod:`explorer.training.events` event; setting ``stop`` stops the run after the current
    step, and ``last.pt`` keeps that step (resumable from there)."""

    progress: Callable[[Event], None] | None = None
    stop: threading.Event | None = None


class Session:
    """One run: its data split, classes, model and optimiser, and where the loop stands.

    Under ``torchrun`` there is one Session per process (``world``): each trains on its share
    of every epoch through DistributedDataParallel and scores its share of the validation set;
    only rank 0 writes the run folder.
    """

    def __init__(
        self, cfg: TrainSettings, run: Path, control: RunControl, world: World, device: str
    ):
        self.cfg, self.run_dir = cfg, run
        self.progress, self.stop = control.progress, control.stop
        self.world, self.device = world, device
        self.task = train_task(get_spec(cfg.model).task)
        self.within: _WithinEpoch | None = None  # a resumed run's unfinished epoch
        self.kept = ""  # what last.pt holds ("" before it is first written): stop messages
        torch.set_num_threads(max(1, cpu_threads() // world.size))
        self.train, self.val = data.train_and_val(cfg)
        self.categories = self.train.dataset.index.categories
        self.category_ids = [c["id"] for c in self.categories]
        self.class_names = self.task.kind.class_names([c["name"] for c in self.categories])
        self.class_category_ids = self.task.kind.class_category_ids(self.category_ids)
        self.notes: list[str] = []
        self._val = None  # the validation set, once the first evaluation has loaded it
        self._emit(Preparing(str(run), _building(cfg)))
        model = model_for_run(cfg, len(self.class_names), self.notes)
        model = model.to(self.device).to(memory_format=_MEMORY_FORMAT)
        # self.net trains; self.model is what is saved
        self.model, self.net = distributed.parallel(world, model, device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        # fused: one kernel for all parameters; on a CPU 38 ms instead of ~360 ms a step for
        # AlexNet's 58M parameters (docs/BENCHMARKS.md)
        fused = self.device.split(":")[0] in ("cpu", "cuda")
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=self.task.weight_decay, fused=fused
        )
        self.epoch, self.step, self.best, self.best_epoch = 0, 0, -1.0, -1
        self.planned = cfg.epochs  # fewer when the time budget cannot fit them all
        self.budget_note = ""
        self.step_seconds: list[float] = []  # this epoch's, for the time budget
        self.budget_clock = _clock()  # the time budget counts from run()
        # what an epoch costs besides its steps (validation, checkpoints), for the time budget
        self.val_seconds: float | None = None
        self.started = time.time()  # moved back by a resumed run's earlier seconds

    # ------------------------------------------------------------------ bookkeeping

    def describe(self) -> runs.RunConfig:
        return {
            "settings": {k: v for k, v in vars(self.cfg).items()},
            "dataset": {
                "train": str(self.train.dataset.index.path),
                "train_fingerprint": self.train.dataset.index.fingerprint,
                "val": str(self.val.dataset.index.path),
                "val_fingerprint": self.val.dataset.index.fingerprint,
                "train_images": len(self.train.rows),
                "val_images": len(self.val.rows),
            },
            "class_names": self.class_names,
            "category_ids": self.class_category_ids,
            "device": self.device,
            "world_size": self.world.size,
            "versions": runs.versions(),
            "notes": self.notes,
            "created": time.time(),
        }

    def status(self, status: JobStatus, message: str = "") -> runs.RunStatus:
        return {
            "epoch": self.epoch,
            "planned_epochs": self.planned,
            "asked_epochs": self.cfg.epochs,
            "budget_note": self.budget_note,
            "started": self.started,
            "seconds": round(time.time() - self.started, 1),
            "step": self.step,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "metric": self.task.metric.name,
            "status": status,
            "message": message,
        }

    def write_status(self, status: JobStatus, message: str = "") -> None:
        if not self.world.main:
            return
        runs.write_status(self.run_dir, self.status(status, message))

    # ------------------------------------------------------------------ data

    def _load_train(self) -> data.Tensors:
        """The training examples, as the run's task reads them: each decoded when a batch
        first asks for it (:meth:`data.Tensors.load`), so the first step does not wait for the
        whole set."""
        what = f"training {self.task.examples}"
        return self.task.load_train(self.cfg, self.train, self.category_ids, self._reporter(what))

    def _val_set(self):
        """The validation set, as the run's task reads it, loaded when the first evaluation
        needs it (not before the first step: a run's live curve starts seconds after Start).
        A Stop waits for it: the epoch it scores is then kept."""
        if self._val is None:
            what = f"validation {self.task.examples}"
            report = self._reporter(what, stoppable=False)
            preprocess = self.inference_preprocess()
            self._val = self.task.load_val(self.val, self.category_ids, preprocess, report)
            self._note_skipped(self._val.skipped)
        return self._val

    def _note_skipped(self, skipped: list[str]) -> None:
        self.notes.extend(f"skipped: {s}" for s in skipped if f"skipped: {s}" not in self.notes)

    def _reporter(self, what: str, stoppable: bool = True):
        """Each call reports the loading's progress and, when ``stoppable``, honours a Stop
        (loading takes a while on a slow machine)."""

        def report(done: int, total: int) -> None:
            if stoppable and self._stop_asked():
                raise Stopped(self._stop_message())
            self._emit(Loading(str(self.run_dir), what, done, total))

        return report

    # ------------------------------------------------------------------ loop

    def inference_preprocess(self) -> Preprocess:
        """How inference must read images for this model (saved in every checkpoint)."""
        return Preprocess(**self.task.preprocess_record(self.cfg))

    def _checkpoint(self, with_state: bool) -> Checkpoint:
        cfg = self.cfg
        prep = self.task.preprocess_record(cfg)
        ckpt: Checkpoint = {
            "format": CHECKPOINT_FORMAT,
            "model": cfg.model,
            "encoder": cfg.encoder,
            "task": cfg.task,
            "label_space": "dataset",
            "class_names": self.class_names,
            "category_ids": self.class_category_ids,
            "preprocess": prep,
            "state_dict": self.model.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "best": self.best,
            "best_epoch": self.best_epoch,
        }
        if with_state:
            ckpt["optimizer"] = self.optimizer.state_dict()
        return ckpt

    def _resume(self) -> None:
        """Continue from ``last.pt`` with an unbroken history: metrics.jsonl is cut back to its
        step (TensorBoard too, by ``purge_step``); killed before the first ``last.pt`` was
        written, the run starts over from step 0 with an empty history."""
        remove_stale_temporaries(self.run_dir)  # e.g. .best.pt.<pid>.tmp of the killed process
        path = self.run_dir / "last.pt"
        if path.is_file():
            self._load_last(path)
        if self.world.main:  # the unfinished epoch's lines go
            runs.cut_metrics(self.run_dir, self.step, self.epoch)

    def _load_last(self, path: Path) -> None:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means the same to the user
            raise ExplorerError(
                f"{path}: cannot resume from it ({e.__class__.__name__}: {e})"
            ) from None
        if "optimizer" not in ckpt:
            raise ExplorerError(
                f"{path}: holds no optimiser state (a finished run's): nothing to resume"
            )
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.best, self.best_epoch = ckpt["best"], ckpt["best_epoch"]
        within = ckpt.get("within_epoch")
        if within:
            self.within = _WithinEpoch(
                int(within["batch"]),
                [float(x) for x in within["losses"]],
                within["generator"],
                within["torch_rng"],
            )
        self.kept = self._position(self.within.batch if self.within else 0)

    def _emit(self, event: Event) -> None:
        if self.progress:
            self.progress(event)

    def run(self, resume: bool = False) -> None:
        """Epochs until the planned number (or the time budget) is reached."""
        t0 = self.budget_clock = _clock()
        if resume:
            self._resume()
        train_set = self._load_train()
        plan = self._plan(train_set)
        self._emit(Preparing(str(self.run_dir), "the first training steps (the slowest)"))
        main = self.world.main
        # TensorBoard forgets the steps after the checkpoint's (its own step stays)
        purge = self.step + 1 if resume else None
        logs = runs.RunLogs(self.run_dir, purge) if main else runs.NoLogs()
        try:
            train_end: float | None = None
            while self.epoch < self.planned:
                epoch_start = _clock()
                if train_end is not None:  # what an epoch costs besides its steps
                    self.val_seconds = epoch_start - train_end  # validation and checkpoints
                losses, lr, batches = self.train_one_epoch(train_set, plan, logs)
                train_end = _clock()
                train_seconds = train_end - epoch_start
                val = self.evaluate()
                self.epoch += 1
                seconds = _clock() - epoch_start
                record: EpochRecord = {
                    "kind": "epoch",
                    "epoch": self.epoch,
                    "step": self.step,
                    "train_loss": float(np.mean(losses)),
                    **val,
                    "lr": lr,
                    "seconds": round(seconds, 3),
                    "images_per_s": round(
                        batches * self.cfg.batch_size * self.world.size / train_seconds,
                        2,
                    ),
                    "elapsed": round(_clock() - t0, 2),
                    "time": time.time(),
                }
                logs.epoch(record)
                if self.val_seconds is None:  # until the checkpoints' time is known too
                    self.val_seconds = seconds - train_seconds
                self._fit_time_budget(plan, step_in_epoch=0)
                self._end_epoch(record)
        except BaseException:
            with contextlib.suppress(ExplorerError, OSError):  # the first error is the one to tell
                logs.close()
            raise
        logs.close()

    def _plan(self, train_set: data.Tensors) -> _EpochPlan:
        steps = max(1, len(train_set) // (self.cfg.batch_size * self.world.size))
        return _EpochPlan(
            full_steps=steps,
            steps_per_epoch=steps,
            schedule=self.task.schedule,
            warmup=steps // 2,
            class_weights=self._class_weights(train_set) if self.cfg.class_weights else None,
        )

    def train_one_epoch(
        self, train_set: data.Tensors, plan: _EpochPlan, logs: runs.RunLogs
    ) -> _EpochDone:
        """One pass over the training set (the rest of it, for an epoch a stop interrupted);
        returns the step losses and the last learning rate."""
        cfg = self.cfg
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.epoch + 7919 * self.world.rank)
        order = self._epoch_order(len(train_set), gen)
        self.net.train()
        first, losses = 0, []
        if self.within is not None:  # continue the stopped epoch where it was
            first, losses = self.within.batch, list(self.within.losses)
            gen.set_state(self.within.generator)
            torch.set_rng_state(self.within.torch_rng)
            self.within = None
        lr = cfg.lr
        tick, self.step_seconds = _clock(), []
        epoch_first_step = self.step - first  # the schedule's total counts from the epoch's start
        b = first
        while b < plan.steps_per_epoch:  # the time budget may shorten this epoch as it runs
            if self._stop_asked():
                where = _WithinEpoch(b, losses, gen.get_state(), torch.get_rng_state())
                raise self._stop_within_epoch(where)
            # the examples not decoded yet are decoded now (the first epoch's batches); an
            # unreadable one leaves the batch. The decoding is not a step's cost: the budget's
            # plan times steps without it
            loading = _clock()
            idx = train_set.load(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            tick += _clock() - loading
            b += 1
            if not len(idx):
                continue
            total = epoch_first_step + (self.planned - self.epoch) * plan.steps_per_epoch
            lr = plan.schedule(cfg.lr, self.step, total, plan.warmup)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            loss = self._checked_loss(self._train_step(train_set, idx, gen, plan.class_weights))
            self.step += 1
            losses.append(loss)
            now, tick = tick, _clock()
            self.step_seconds.append(tick - now)
            rate = len(idx) * self.world.size / max(tick - now, 1e-6)
            self._log_step(logs, plan, b, _StepDone(loss, lr, rate))
            if b == _PROBE_STEPS:
                self._fit_time_budget(plan, step_in_epoch=b)
        self._note_skipped(train_set.skipped)  # the unreadable examples its batches met
        return _EpochDone(losses, lr, plan.steps_per_epoch - first)

    def _checked_loss(self, loss: float) -> float:
        """The step's loss (under torchrun the mean over processes, so all stop together on a
        NaN); a NaN or inf stops the run with what to do."""
        if self.world.distributed:
            loss = float(distributed.sum_all(self.world, [loss], self.device)[0]) / self.world.size
        if not math.isfinite(loss):
            raise ExplorerError(
                f"the loss became {loss} at epoch {self.epoch + 1}, step {self.step + 1}: "
                f"the run stopped; last.pt holds the last good epoch ({self.epoch}). "
                "Try a lower --lr."
            )
        return loss

    # ------------------------------------------------------------------ stopping

    def _stop_asked(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def _stop_within_epoch(self, where: _WithinEpoch) -> Stopped:
        """Keep the batches done of this epoch in ``last.pt`` (one process only: under
        torchrun the processes could stand at different batches, and ``last.pt`` keeps the last
        finished epoch); the exception to raise says what was kept."""
        if where.batch > 0 and not self.world.distributed:
            ckpt = self._checkpoint(True)
            ckpt["within_epoch"] = where.record()
            runs.save_checkpoint(ckpt, self.run_dir / "last.pt")
            self.kept = self._position(where.batch)
        return Stopped(self._stop_message())

    def _position(self, batch: int) -> str:
        """Where the run stands, as said to the user: "epoch 2 of 4", "batch 5 of epoch 3"."""
        if batch:
            return f"batch {batch} of epoch {self.epoch + 1} (step {self.step})"
        return f"epoch {self.epoch} of {self.planned}"

    def _stop_message(self, how: str = "stopped by the user") -> str:
        """Exactly what a stopped run keeps, and whether Resume has anything to continue."""
        if not self.kept:
            return f"{how} before the first epoch's checkpoint: nothing was kept to resume"
        return (
            f"{how}; last.pt keeps the run as of {self.kept}: Resume (--resume) continues "
            "from there"
        )

    def finish_checkpoints(self) -> None:
        """A finished run is not resumed, so ``last.pt`` needs no optimiser state (AdamW's is
        twice the weights): it holds the last epoch's weights only, and is a second name of
        ``best.pt`` (a hard link: no second copy on disk) when ``best.pt`` holds that epoch."""
        if not self.world.main:
            return
        last, best = self.run_dir / "last.pt", self.run_dir / "best.pt"
        if self.best_epoch == self.epoch and best.is_file():
            link = temporary_path(last)
            try:
                os.link(best, link)
                os.replace(link, last)
                return
            except OSError:  # no hard links here: a copy of the weights
                link.unlink(missing_ok=True)
        runs.save_checkpoint(self._checkpoint(False), last)

    def _epoch_order(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """The examples of this epoch, in order: a seeded permutation; under torchrun this
        process's share of it (DistributedSampler: disjoint shares of equal length)."""
        if not self.world.distributed:
            return torch.randperm(n, generator=gen)
        # it only takes len() of its first argument: a range serves, though torch's stub asks
        # for a Dataset
        sampler: torch.utils.data.DistributedSampler[int] = torch.utils.data.DistributedSampler(
            range(n),  # type: ignore[arg-type]
            num_replicas=self.world.size,
            rank=self.world.rank,
            seed=self.cfg.seed,
            drop_last=True,
        )
        sampler.set_epoch(self.epoch)
        return torch.tensor(list(sampler))

    def _log_step(self, logs: runs.RunLogs, plan: _EpochPlan, batch: int, done: _StepDone) -> None:
        """The step's metrics.jsonl line (on disk at once) and its progress event."""
        loss, lr, images_per_s = done
        logs.step(
            {
                "kind": "step",
                "epoch": round(self.epoch + batch / plan.steps_per_epoch, 4),
                "step": self.step,
                "train_loss": loss,
                "lr": lr,
                "images_per_s": round(images_per_s, 2),
                "time": time.time(),
            }
        )
        self._emit(
            Step(str(self.run_dir), self.epoch + 1, self.planned, batch, plan.steps_per_epoch, loss)
        )

    def _end_epoch(self, record: EpochRecord) -> None:
        """Checkpoints (best.pt when the score improved, always last.pt), status, event."""
        score = record[self.task.metric.name]
        better = self.task.metric.improves(score, self.best, self.best_epoch)
        if better:
            self.best, self.best_epoch = score, self.epoch
        if not self.world.main:
            return
        if better:
            runs.save_checkpoint(self._checkpoint(False), self.run_dir / "best.pt")
        runs.save_checkpoint(self._checkpoint(True), self.run_dir / "last.pt")
        self.kept = self._position(0)
        self.write_status("running", self.budget_note)
        self._emit(EpochEnd(str(self.run_dir), self.epoch, self.planned, record, self.budget_note))

    def _fit_time_budget(self, epoch_plan: _EpochPlan, step_in_epoch: int) -> None:
        """Fit the rest of the run to its time budget from this machine's measured speed: the
        most steps that fit (shorter epochs, or fewer), the schedule compressed onto them, and
        a sentence in ``budget_note`` when the recipe's steps do not all fit
        (:mod:`explorer.training.plan`)."""
        budget = self.cfg.time_budget
        if not budget:
            return
        if len(self.step_seconds) > 1:
            # the median of the steady steps: the first one of an epoch pays for allocations
            step_seconds = float(np.median(self.step_seconds[1:]))
            val_seconds = self.val_seconds
            if val_seconds is None:
                val_seconds = estimated_val_seconds(
                    step_seconds, epoch_plan.full_steps, len(self.val.rows) / len(self.train.rows)
                )
            fitted = fit(
                StepPlan(self.cfg.epochs, epoch_plan.full_steps),
                Position(self.epoch, step_in_epoch, budget - (_clock() - self.budget_clock)),
                Throughput(step_seconds, val_seconds),
            )
            # every process must do the same steps: rank 0's clock decides
            self.planned, epoch_plan.steps_per_epoch = distributed.from_main(
                self.world, (fitted.epochs, fitted.steps_per_epoch)
            )
            epoch_plan.warmup = min(epoch_plan.warmup, epoch_plan.steps_per_epoch // 2)
        asked = self.cfg.epochs * epoch_plan.full_steps
        ending = self.epoch >= self.planned and step_in_epoch == 0
        steps_then = self.step - step_in_epoch
        planned_steps = steps_then + (self.planned - self.epoch) * epoch_plan.steps_per_epoch
        self.budget_note = shortfall_note(
            self.step if ending else planned_steps, asked, budget, finished=ending
        )

    def _class_weights(self, train_set: data.Tensors) -> torch.Tensor:
        targets = train_set.class_targets().flatten()
        counts = torch.bincount(
            targets[targets != IGNORE_LABEL], minlength=len(self.class_names)
        ).float()
        return (counts.sum() / counts.clamp(min=1) / len(counts)).clamp(max=10).to(self.device)

    def _train_step(self, train_set: data.Tensors, idx, gen, weights) -> float:
        """One optimiser step on the examples ``idx``; returns the loss."""
        step = StepInputs(train_set, idx, gen, weights, self.device, len(self.class_names))
        loss = self.task.loss(self.net, self.cfg, step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def evaluate(self) -> Scores:
        """Validation loss and scores over the whole validation set, each process scoring its
        share (:mod:`explorer.training.validation`: exactly what ``evaluate`` scores, read the
        same way)."""
        val_set = self._val_set()
        with torch.inference_mode():
            self.model.eval()
            return self.task.evaluate(
                self.model,
                val_set,
                self.inference_preprocess(),
                self.device,
                self.world,
            )


def train(
    cfg: TrainConfig | TrainSettings,
    progress: Callable[[Event], None] | None = None,
    stop: threading.Event | None = None,
    resume: str | None = None,
) -> Path:
    """Train a classifier or a segmenter; returns the run folder.

    Args:
        cfg: the settings, as asked or already resolved (ignored when resuming: the run
            folder's are used).
        progress: called with each :mod:`explorer.training.events` event.
        stop: set it to stop the run after the current step (resumable).
        resume: a run folder to continue from its ``last.pt``.

    Raises:
        ExplorerError: bad settings or data; a NaN/inf loss (the last good checkpoint stays).
        Stopped: ``stop`` was set or Ctrl-C was pressed (the run is resumable).
    """
    world = distributed.from_environment()
    device = distributed.start(world, choose_device(cfg.device))
    try:
        control = RunControl(progress if world.main else None, stop)
        return _train(cfg, control, resume, world, device)
    finally:
        distributed.finish(world)


def _train(
    cfg: TrainConfig | TrainSettings,
    control: RunControl,
    resume: str | None,
    world: World,
    device: str,
) -> Path:
    made: tuple[TrainSettings, Path] | ExplorerError | None = None
    if world.main:  # rank 0 names (and checks) the run folder; the others take its answer
        try:
            made = _saved_run(resume) if resume else _new_run(cfg)
            made[1].mkdir(parents=True, exist_ok=True)
        except ExplorerError as e:
            made = e
    made = distributed.from_main(world, made)
    if isinstance(made, ExplorerError):
        raise made
    assert made is not None  # rank 0 always answers one or the other
    settings, run = made
    torch.manual_seed(settings.seed)
    session = Session(settings, run, control, world, device)
    if resume:
        session.started -= runs.trained_seconds(run)  # the duration counts every resumption
    elif world.main:
        runs.write_config(run, session.describe())
    session.write_status("running")
    try:
        session.run(resume=bool(resume))
    except Stopped as e:
        session.write_status("stopped", str(e))
        raise
    except ExplorerError as e:
        session.write_status("failed", str(e))
        raise
    except KeyboardInterrupt:
        message = session._stop_message("interrupted (Ctrl-C)")
        session.write_status("stopped", message)
        raise Stopped(message) from None
    except BaseException as e:  # anything else (out of memory, disk full): never leave "running"
        session.write_status("failed", f"{e.__class__.__name__}: {e}")
        raise
    session.finish_checkpoints()
    session.write_status("finished", session.budget_note)
    return run


def _saved_run(resume: str) -> tuple[TrainSettings, Path]:
    run = Path(resume)
    settings = runs.read_config(run)
    if runs.read_status(run).get("status") == "finished":
        raise ExplorerError(f"{run}: the run has finished; there is nothing to resume")
    return settings, run


def _building(cfg: TrainSettings) -> str:
    """The first phase a run reports."""
    return "building the model" + (" from its published weights" if cfg.pretrained else "")


def _new_run(cfg: TrainConfig | TrainSettings) -> tuple[TrainSettings, Path]:
    settings = cfg.resolved() if isinstance(cfg, TrainConfig) else cfg
    run = Path(settings.out) if settings.out else runs.default_out(settings.task, settings.model)
    if (run / "config.json").exists():
        raise ExplorerError(f"{run}: already holds a run; use --resume {run} or another --out")
    return settings, run
