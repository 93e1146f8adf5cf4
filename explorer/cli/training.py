"""``train``: a classifier on object crops or a segmenter on semantic masks, into a run folder."""

from __future__ import annotations

import argparse
import os
import sys

from explorer.cli.command import Command
from explorer.cli.progress import TrainProgress
from explorer.types import DEVICES, TASKS


def _args_train(p: argparse.ArgumentParser) -> None:
    from explorer.training.config import PRESET_NAMES

    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--coco", required=True, help="training COCO instances JSON")
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument(
        "--val-coco", help="validation JSON (default: a seeded 20%% of the training images)"
    )
    p.add_argument("--val-images", help="validation image folder")
    p.add_argument(
        "--model",
        required=True,
        help="alexnet-classic, alexnet, smp-deeplabv3, smp-deeplabv3plus, "
        "deeplabv3-mobilenet-v3-large, ...",
    )
    p.add_argument(
        "--encoder", help="smp encoder (resnet18, resnet34, mobilenet_v2, efficientnet-b0, ...)"
    )
    p.add_argument(
        "--pretrained", action="store_true", help="start from published weights when available"
    )
    p.add_argument(
        "--freeze-features", action="store_true", help="alexnet: train only the classifier layers"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help="quick: a recipe that trains the sample in minutes on a CPU",
    )
    p.add_argument(
        "--class-weights", action="store_true", help="weight the loss against class imbalance"
    )
    p.add_argument("--dice", action="store_true", help="segment: add a Dice loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", help="run folder (default: <work>/runs/<time>-<task>-<model>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last.pt")
    p.add_argument("--quiet", action="store_true")


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from explorer.training import Stopped, TrainConfig, runs, train

    cfg = TrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    )
    from explorer.training.launch import stop_on_sigterm

    stop_on_sigterm()  # a kill (or torchrun stopping its workers) ends the run "stopped"
    # under torchrun every process runs this; rank 0 alone speaks (and writes the run)
    main = os.environ.get("RANK", "0") == "0"
    progress = TrainProgress(args.quiet or not main)
    try:
        run = train(cfg, progress, resume=args.resume)
    except Stopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 130
    finally:
        progress.close()
    if not main:
        return 0
    status = runs.read_status(run)
    print(
        f"{run}: best {status['metric']} {status['best']:.4f} at epoch {status['best_epoch']} "
        f"(best.pt; use it with --model {run})"
    )
    if status.get("budget_note") and status["budget_note"] != progress.note:  # not said yet
        print(status["budget_note"])
    return 0


TRAIN = Command(
    "train",
    "train a classifier (object crops) or a segmenter (semantic masks)",
    _args_train,
    _cmd_train,
)
