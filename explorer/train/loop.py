"""The training loop and its run folder.

A run folder holds ``config.json`` (every setting, the dataset fingerprint, class names,
versions, device), ``metrics.jsonl`` (per-step ``train_loss`` lines and one line per epoch),
TensorBoard event files, ``last.pt`` and ``best.pt`` (written atomically; loadable by the model
registry), and ``status.json`` (running / finished / stopped / failed, with a message).
"""

from __future__ import annotations

import json
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from explorer.errors import ExplorerError

# Recipes measured on the embedded sample with two CPU cores (docs/BENCHMARKS.md).
PRESETS: dict[str, dict[str, dict]] = {
    "quick": {
        "alexnet-classic": {"epochs": 8, "batch_size": 64, "lr": 3e-4, "image_size": 227, "time_budget": 230},
        "alexnet": {"epochs": 6, "batch_size": 64, "lr": 3e-4, "image_size": 224, "time_budget": 230},
        "smp-deeplabv3": {"epochs": 20, "batch_size": 16, "lr": 2e-3, "image_size": 128, "encoder": "resnet18",
                          "time_budget": 420},
        "smp-deeplabv3plus": {"epochs": 20, "batch_size": 16, "lr": 2e-3, "image_size": 128,
                              "encoder": "resnet18", "time_budget": 420},
        "deeplabv3-mobilenet-v3-large": {"epochs": 16, "batch_size": 16, "lr": 1e-3, "image_size": 160,
                                         "time_budget": 420},
    },
}
DEFAULTS = {"classify": {"epochs": 30, "batch_size": 64, "lr": 3e-4, "image_size": 227},
            "segment": {"epochs": 60, "batch_size": 16, "lr": 1e-3, "image_size": 256, "encoder": "resnet34"}}
TASK_MODELS = {"classify": ("alexnet-classic", "alexnet"),
               "segment": ("smp-deeplabv3", "smp-deeplabv3plus", "deeplabv3-mobilenet-v3-large",
                           "deeplabv3-resnet50", "deeplabv3-resnet101")}


@dataclass
class TrainConfig:
    """Every setting of a run (None = the preset's, else the task's default)."""

    task: str
    coco: str
    images: str
    model: str
    val_coco: str | None = None
    val_images: str | None = None
    encoder: str | None = None
    pretrained: bool = False
    freeze_features: bool = False
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    image_size: int | None = None
    device: str = "auto"
    preset: str | None = None
    out: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    min_area: float = 64.0
    class_weights: bool = False
    dice: bool = False
    time_budget: float | None = None
    workers: int = 2
    extra: dict = field(default_factory=dict)

    def resolved(self) -> TrainConfig:
        if self.task not in TASK_MODELS:
            raise ExplorerError(f"unknown task {self.task!r}; valid: classify, segment")
        if self.model not in TASK_MODELS[self.task]:
            raise ExplorerError(f"{self.model} cannot be trained for {self.task}; valid: "
                                f"{', '.join(TASK_MODELS[self.task])}")
        if self.preset and self.preset not in PRESETS:
            raise ExplorerError(f"unknown preset {self.preset!r}; valid: {', '.join(PRESETS)}")
        base = {**DEFAULTS[self.task], **(PRESETS.get(self.preset or "", {}).get(self.model, {}))}
        if self.model == "alexnet-classic":
            base["image_size"] = 227  # the 2012 layout's fully connected layer needs 6x6x256
        values = asdict(self)
        for k, v in base.items():
            if values.get(k) is None:
                values[k] = v
        return TrainConfig(**values)


def default_out(cfg: TrainConfig) -> Path:
    from explorer.settings import cache_dir

    return cache_dir("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.task}-{cfg.model}"


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary name, then rename: a crash never leaves half a checkpoint."""
    import torch

    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


class Stopped(Exception):
    """A run stopped on request (Ctrl-C, the Stop button): resumable."""


def train(cfg: TrainConfig, progress: Callable[[dict], None] | None = None,
          stop: threading.Event | None = None, resume: str | None = None) -> Path:
    """Train a classifier or a segmenter; returns the run folder.

    Raises:
        ExplorerError: bad settings or data; a NaN/inf loss (the last good checkpoint stays).
        Stopped: ``stop`` was set or Ctrl-C was pressed (the run is resumable).
    """
    import torch

    from explorer.train.session import Session

    if resume:
        run = Path(resume)
        if not (run / "config.json").is_file():
            raise ExplorerError(f"{run}: not a run folder (no config.json)")
        saved = json.loads((run / "config.json").read_text())["settings"]
        cfg = TrainConfig(**{k: saved[k] for k in (f.name for f in fields(TrainConfig)) if k in saved})
    else:
        cfg = cfg.resolved()
        run = Path(cfg.out) if cfg.out else default_out(cfg)
        if (run / "config.json").exists():
            raise ExplorerError(f"{run}: already holds a run; use --resume {run} or another --out")
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    session = Session(cfg, run, progress, stop)
    if not resume:
        _write_json(run / "config.json", session.describe())
    _write_json(run / "status.json", {"status": "running", "message": "", "updated": time.time()})
    try:
        session.run(resume=bool(resume))
    except Stopped as e:
        _write_json(run / "status.json", {**session.status(), "status": "stopped", "message": str(e)})
        raise
    except ExplorerError as e:
        _write_json(run / "status.json", {**session.status(), "status": "failed", "message": str(e)})
        raise
    except KeyboardInterrupt:
        _write_json(run / "status.json", {**session.status(), "status": "stopped",
                                          "message": "interrupted (Ctrl-C); resume with --resume"})
        raise Stopped("interrupted (Ctrl-C); the run can be resumed") from None
    except BaseException as e:  # anything else (out of memory, disk full): never leave "running"
        _write_json(run / "status.json", {**session.status(), "status": "failed",
                                          "message": f"{e.__class__.__name__}: {e}"})
        raise
    _write_json(run / "status.json", {**session.status(), "status": "finished", "message": ""})
    return run


def versions() -> dict:
    import torch
    import torchvision

    return {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__}


def poly_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up, then the poly schedule ``(1 - t)^0.9`` of torchvision's segmentation reference."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (1 - t) ** 0.9


def cosine_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * 0.5 * (1 + math.cos(math.pi * t))
