"""The trainer: one run's data, model, optimiser, epoch loop, checkpoints and metrics, and
:func:`train`, the entry point the CLI and the app's job queue call."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from explorer.coco.index import open_index
from explorer.errors import ExplorerError
from explorer.inference.metrics import confusion_matrix, segmentation_scores
from explorer.models import create_model
from explorer.models.device import choose_device
from explorer.models.weights import CHECKPOINT_FORMAT, WeightsError, load_model
from explorer.training import data, runs
from explorer.training.config import TrainConfig
from explorer.training.schedules import cosine_lr, poly_lr


class Stopped(Exception):
    """A run stopped on request (Ctrl-C, the Stop button): resumable."""


CROP_LOAD = (
    256  # crops are kept as 256 squares; training takes random 227/224 crops, validation the centre
)


class Session:
    def __init__(self, cfg: TrainConfig, run: Path, progress, stop):
        self.cfg, self.run_dir, self.progress, self.stop = cfg, run, progress, stop
        self.device = choose_device(cfg.device)
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        self.train_index = open_index(cfg.coco)
        if cfg.val_coco:
            self.val_index = open_index(cfg.val_coco)
            self.train_rows = np.arange(self.train_index.num_images)
            self.val_rows = np.arange(self.val_index.num_images)
        else:  # a seeded split of the training images
            self.val_index = self.train_index
            order = np.random.default_rng(cfg.seed).permutation(self.train_index.num_images)
            n_val = max(1, int(round(cfg.val_fraction * len(order))))
            self.val_rows, self.train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        self.categories = self.train_index.categories
        self.category_ids = [c["id"] for c in self.categories]
        names = [c["name"] for c in self.categories]
        seg = cfg.task == "segment"
        self.class_names = ["background"] + names if seg else names
        self.class_category_ids = ([None] if seg else []) + self.category_ids
        self.notes: list[str] = []
        self.model = self._build_model().to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=0.05 if not seg else 1e-4
        )
        self.epoch, self.step, self.best, self.best_epoch = 0, 0, -1.0, -1
        self.planned = cfg.epochs  # fewer when the time budget cannot fit them all
        self.started = time.time()

    # ------------------------------------------------------------------ setup

    def _build_model(self):
        cfg, n = self.cfg, len(self.class_names)
        if cfg.model == "alexnet":
            model = create_model("alexnet", 1000)
            if cfg.pretrained:
                try:
                    model.load_state_dict(load_model("alexnet", device="cpu").module.state_dict())
                    self.notes.append("fine-tuned from torchvision's ImageNet weights")
                except WeightsError as e:
                    self.notes.append(f"pretrained weights unavailable, trained from scratch: {e}")
            model.classifier[6] = torch.nn.Linear(4096, n)
            if cfg.freeze_features:
                model.features.requires_grad_(False)
            return model
        if cfg.model.startswith("deeplabv3-"):
            model = create_model(cfg.model, 21, aux_loss=True)
            if cfg.pretrained:
                try:
                    model.load_state_dict(
                        load_model(cfg.model, device="cpu").module.state_dict(), strict=False
                    )
                    self.notes.append("backbone and head from torchvision's COCO weights")
                except WeightsError as e:
                    self.notes.append(f"pretrained weights unavailable, trained from scratch: {e}")
            last = model.classifier[-1]
            model.classifier[-1] = torch.nn.Conv2d(last.in_channels, n, 1)
            model.aux_classifier = None
            return model
        model = create_model(cfg.model, n, encoder=cfg.encoder or "resnet34")
        if cfg.pretrained:
            self.notes.append(
                "smp encoders download their ImageNet weights from the Hugging Face hub; "
                "not attempted offline: trained from scratch"
            )
        return model

    def describe(self) -> dict:
        return {
            "settings": {k: v for k, v in vars(self.cfg).items()},
            "dataset": {
                "train": str(self.train_index.path),
                "train_fingerprint": self.train_index.fingerprint,
                "val": str(self.val_index.path),
                "val_fingerprint": self.val_index.fingerprint,
                "train_images": len(self.train_rows),
                "val_images": len(self.val_rows),
            },
            "class_names": self.class_names,
            "category_ids": self.class_category_ids,
            "device": self.device,
            "versions": runs.versions(),
            "notes": self.notes,
            "created": time.time(),
        }

    def status(self) -> dict:
        return {
            "epoch": self.epoch,
            "planned_epochs": self.planned,
            "step": self.step,
            "best": self.best,
            "best_epoch": self.best_epoch,
            "metric": "val_acc" if self.cfg.task == "classify" else "val_miou",
            "updated": time.time(),
        }

    # ------------------------------------------------------------------ data

    def _load(self):
        cfg = self.cfg
        report = (
            (
                lambda what: (
                    lambda d, t: self._emit({"phase": f"loading {what}", "done": d, "total": t})
                )
            )
            if self.progress
            else (lambda what: None)
        )
        if cfg.task == "classify":
            size = CROP_LOAD if cfg.image_size > 200 else int(cfg.image_size * 1.14)
            tr = data.load_crops(
                self.train_index,
                Path(cfg.images),
                self.category_ids,
                size,
                cfg.min_area,
                cfg.workers,
                report("training crops"),
                self.train_rows,
            )
            va = data.load_crops(
                self.val_index,
                Path(cfg.val_images or cfg.images),
                self.category_ids,
                size,
                cfg.min_area,
                cfg.workers,
                report("validation crops"),
                self.val_rows,
            )
        else:
            tr = data.load_segmentation(
                self.train_index,
                Path(cfg.images),
                self.category_ids,
                cfg.image_size,
                cfg.workers,
                report("training images"),
                self.train_rows,
            )
            va = data.load_segmentation(
                self.val_index,
                Path(cfg.val_images or cfg.images),
                self.category_ids,
                cfg.image_size,
                cfg.workers,
                report("validation images"),
                self.val_rows,
            )
        for s in tr.skipped + va.skipped:
            self.notes.append(f"skipped: {s}")
        return tr, va

    # ------------------------------------------------------------------ loop

    def _emit(self, event: dict) -> None:
        if self.progress:
            self.progress({**event, "run": str(self.run_dir)})

    def _checkpoint(self, with_state: bool) -> dict:
        cfg = self.cfg
        prep = (
            {"resize": CROP_LOAD, "crop": cfg.image_size}
            if cfg.task == "classify"
            else {"resize": cfg.image_size, "square": True}
        )
        ckpt = {
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
        path = self.run_dir / "last.pt"
        if not path.is_file():
            return  # killed before the first epoch ended: start over
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint means the same to the user
            raise ExplorerError(
                f"{path}: cannot resume from it ({e.__class__.__name__}: {e})"
            ) from None
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.epoch, self.step = ckpt["epoch"], ckpt["step"]
        self.best, self.best_epoch = ckpt["best"], ckpt["best_epoch"]
        kept = [
            r
            for r in runs.read_metrics(
                self.run_dir
            )  # torn lines are skipped; the unfinished epoch dropped
            if r["step"] <= self.step and r.get("epoch", 0) <= self.epoch
        ]
        (self.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))

    def run(self, resume: bool = False) -> None:
        from torch.utils.tensorboard import SummaryWriter

        cfg = self.cfg
        t0 = time.perf_counter()
        if resume:
            self._resume()
        train_set, val_set = self._load()
        n = len(train_set.images)
        steps_per_epoch = max(1, n // cfg.batch_size)
        total_epochs = cfg.epochs
        weights = self._class_weights(train_set) if cfg.class_weights else None
        schedule = cosine_lr if cfg.task == "classify" else poly_lr
        warmup = steps_per_epoch // 2
        writer = SummaryWriter(str(self.run_dir), purge_step=self.step if resume else None)
        metrics = open(self.run_dir / "metrics.jsonl", "a")
        try:
            while self.epoch < total_epochs:
                epoch_start = time.perf_counter()
                gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.epoch)
                order = torch.randperm(n, generator=gen)
                self.model.train()
                losses = []
                for b in range(steps_per_epoch):
                    if self.stop is not None and self.stop.is_set():
                        raise Stopped("stopped by the user; the run can be resumed")
                    idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                    lr = schedule(cfg.lr, self.step, total_epochs * steps_per_epoch, warmup)
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    loss = self._train_step(train_set, idx, gen, weights)
                    if not math.isfinite(loss):
                        raise ExplorerError(
                            f"the loss became {loss} at epoch {self.epoch + 1}, step {self.step + 1}: "
                            f"the run stopped; last.pt holds the last good epoch ({self.epoch}). "
                            "Try a lower --lr."
                        )
                    self.step += 1
                    losses.append(loss)
                    metrics.write(
                        json.dumps(
                            {
                                "kind": "step",
                                "epoch": self.epoch + (b + 1) / steps_per_epoch,
                                "step": self.step,
                                "train_loss": loss,
                                "lr": lr,
                                "time": time.time(),
                            }
                        )
                        + "\n"
                    )
                    writer.add_scalar("train/loss_step", loss, self.step)
                    self._emit(
                        {
                            "phase": "train",
                            "epoch": self.epoch + 1,
                            "epochs": total_epochs,
                            "batch": b + 1,
                            "batches": steps_per_epoch,
                            "loss": loss,
                        }
                    )
                train_seconds = time.perf_counter() - epoch_start
                val = self._validate(val_set)
                self.epoch += 1
                seconds = time.perf_counter() - epoch_start
                record = {
                    "kind": "epoch",
                    "epoch": self.epoch,
                    "step": self.step,
                    "train_loss": float(np.mean(losses)),
                    **val,
                    "lr": lr,
                    "seconds": round(seconds, 3),
                    "images_per_s": round(steps_per_epoch * cfg.batch_size / train_seconds, 2),
                    "elapsed": round(time.perf_counter() - t0, 2),
                    "time": time.time(),
                }
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                for k, v in record.items():
                    if k.startswith(("train_", "val_")):
                        writer.add_scalar(f"epoch/{k}", v, self.step)
                writer.flush()
                score = val["val_acc"] if cfg.task == "classify" else val["val_miou"]
                if score > self.best:
                    self.best, self.best_epoch = score, self.epoch
                    runs.save_checkpoint(self._checkpoint(False), self.run_dir / "best.pt")
                runs.save_checkpoint(self._checkpoint(True), self.run_dir / "last.pt")
                runs.write_status(
                    self.run_dir, {**self.status(), "status": "running", "message": ""}
                )
                self._emit(
                    {
                        "phase": "epoch",
                        "epoch": self.epoch,
                        "epochs": total_epochs,
                        "record": record,
                    }
                )
                if cfg.time_budget:  # fit the remaining epochs (and the schedule) in the budget
                    left = cfg.time_budget - (time.perf_counter() - t0)
                    fit = self.epoch + int(left // (seconds * 1.08))
                    if fit < total_epochs:
                        total_epochs = self.planned = max(self.epoch, fit)
        finally:
            metrics.close()
            writer.close()

    def _class_weights(self, train_set) -> torch.Tensor:
        counts = torch.bincount(
            train_set.targets.flatten()[train_set.targets.flatten() != 255],
            minlength=len(self.class_names),
        ).float()
        return (counts.sum() / counts.clamp(min=1) / len(counts)).clamp(max=10).to(self.device)

    def _train_step(self, train_set, idx, gen, weights) -> float:
        cfg = self.cfg
        cuda = self.device.startswith("cuda")
        if cfg.task == "classify":
            x = data.normalise(data.augment_crops(train_set.images[idx], cfg.image_size, gen))
            with torch.autocast(
                "cuda", dtype=torch.bfloat16, enabled=cuda
            ):  # AMP on CUDA (bf16: no scaler)
                logits = self.model(x.to(self.device, non_blocking=True))
            loss = F.cross_entropy(
                logits.float(),
                train_set.targets[idx].to(self.device),
                weight=weights,
                label_smoothing=0.1,
            )
        else:
            x, y = data.augment_segmentation(
                train_set.images[idx], train_set.targets[idx].clone(), gen
            )
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = self.model(data.normalise(x).to(self.device, non_blocking=True))
            out = (out["out"] if isinstance(out, dict) else out).float()  # losses in fp32
            y = y.to(self.device)
            loss = F.cross_entropy(out, y, weight=weights, ignore_index=255)
            if cfg.dice:
                loss = loss + _dice_loss(out, y, len(self.class_names))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    @torch.inference_mode()
    def _validate(self, val_set) -> dict:
        cfg = self.cfg
        self.model.eval()
        losses, correct, total = [], 0, 0
        n_cls = len(self.class_names)
        conf = np.zeros((n_cls, n_cls), np.int64)
        for k in range(0, len(val_set.images), 64):
            xb = val_set.images[k : k + 64]
            yb = val_set.targets[k : k + 64].to(self.device)
            if cfg.task == "classify":
                off = (xb.shape[-1] - cfg.image_size) // 2
                x = data.normalise(
                    xb[:, :, off : off + cfg.image_size, off : off + cfg.image_size].float() / 255
                )
                logits = self.model(x.to(self.device))
                losses.append(float(F.cross_entropy(logits, yb, reduction="sum")))
                correct += int((logits.argmax(1) == yb).sum())
                total += len(yb)
            else:
                out = self.model(data.normalise(xb.float() / 255).to(self.device))
                out = out["out"] if isinstance(out, dict) else out
                losses.append(
                    float(F.cross_entropy(out, yb.long(), ignore_index=255, reduction="sum"))
                )
                total += int((yb != 255).sum())
                conf += confusion_matrix(yb.cpu().numpy(), out.argmax(1).cpu().numpy(), n_cls)
        val_loss = sum(losses) / max(total, 1)
        if cfg.task == "classify":
            return {"val_loss": val_loss, "val_acc": correct / max(total, 1)}
        s = segmentation_scores(conf)
        return {"val_loss": val_loss, "val_miou": s["miou"], "val_pixel_acc": s["pixel_acc"]}


def _dice_loss(logits, target, n: int) -> torch.Tensor:
    """Soft multiclass Dice on the non-ignored pixels (computed in fp32)."""
    keep = (target != 255).unsqueeze(1).float()
    prob = torch.softmax(logits.float(), 1) * keep
    onehot = F.one_hot(target.clamp(max=n - 1), n).permute(0, 3, 1, 2).float() * keep
    inter = (prob * onehot).sum((0, 2, 3))
    union = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (union + 1)).mean()


def train(
    cfg: TrainConfig,
    progress: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
    resume: str | None = None,
) -> Path:
    """Train a classifier or a segmenter; returns the run folder.

    Raises:
        ExplorerError: bad settings or data; a NaN/inf loss (the last good checkpoint stays).
        Stopped: ``stop`` was set or Ctrl-C was pressed (the run is resumable).
    """
    if resume:
        run = Path(resume)
        if not (run / "config.json").is_file():
            raise ExplorerError(f"{run}: not a run folder (no config.json)")
        saved = json.loads((run / "config.json").read_text())["settings"]
        cfg = TrainConfig(
            **{k: saved[k] for k in (f.name for f in fields(TrainConfig)) if k in saved}
        )
    else:
        cfg = cfg.resolved()
        run = Path(cfg.out) if cfg.out else runs.default_out(cfg.task, cfg.model)
        if (run / "config.json").exists():
            raise ExplorerError(f"{run}: already holds a run; use --resume {run} or another --out")
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    session = Session(cfg, run, progress, stop)
    if not resume:
        runs.write_config(run, session.describe())
    runs.write_status(run, {"status": "running", "message": ""})
    try:
        session.run(resume=bool(resume))
    except Stopped as e:
        runs.write_status(run, {**session.status(), "status": "stopped", "message": str(e)})
        raise
    except ExplorerError as e:
        runs.write_status(run, {**session.status(), "status": "failed", "message": str(e)})
        raise
    except KeyboardInterrupt:
        runs.write_status(
            run,
            {
                **session.status(),
                "status": "stopped",
                "message": "interrupted (Ctrl-C); resume with --resume",
            },
        )
        raise Stopped("interrupted (Ctrl-C); the run can be resumed") from None
    except BaseException as e:  # anything else (out of memory, disk full): never leave "running"
        runs.write_status(
            run, {**session.status(), "status": "failed", "message": f"{e.__class__.__name__}: {e}"}
        )
        raise
    runs.write_status(run, {**session.status(), "status": "finished", "message": ""})
    return run
