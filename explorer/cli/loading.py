"""What the model commands share: their argument groups (a dataset and one model, or a dataset,
a classifier and a segmenter; where the model runs) and the loading of what those arguments
name (the dataset, its image folder, the chosen image rows, the models, the engine).

The library is imported inside the loaders, so that building the parser stays light.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from explorer.cli.progress import progress_callback
from explorer.errors import ExplorerError
from explorer.types import DEVICES


def add_model_args(p: argparse.ArgumentParser) -> None:
    """A dataset and one model (predict, evaluate, embed), the images to run, and the engine."""
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--images", required=True, help="image folder")
    p.add_argument(
        "--model",
        required=True,
        help="a registry name (alexnet, deeplabv3-resnet50, ...) or a "
        "training run folder / checkpoint",
    )
    p.add_argument(
        "--weights",
        help="a weights file or run folder; 'untrained' for random weights "
        "(default: the published weights)",
    )
    p.add_argument("--encoder", help="smp encoder (smp-* models without a checkpoint)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument(
        "--batch-size",
        type=int,
        help="default: 32 / 2 (classify / segment) on a CPU, 256 / 16 on CUDA",
    )
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_args(p)


def add_two_model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """A dataset, a classifier and a segmenter (compare, mistakes); ``required=False``: the
    models may be left out (the command checks what it was given)."""
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--images", required=required, help="image folder")
    p.add_argument("--classifier", required=required, help="a registry name or a run folder")
    p.add_argument("--segmenter", required=required, help="a registry name or a run folder")
    p.add_argument(
        "--classifier-weights", help="weights file, or 'untrained' (default: published / the run's)"
    )
    p.add_argument(
        "--segmenter-weights", help="weights file, or 'untrained' (default: published / the run's)"
    )
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_engine_args(p)


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """Where the models run: this process or a Ray cluster, and how many workers."""
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where the model runs: this process, or a Ray cluster",
    )
    p.add_argument(
        "--ray-address",
        help="auto (the cluster running here) or ray://HOST:10001; default: "
        "$EXPLORER_RAY_ADDRESS, else a new local cluster",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local: DataLoader worker processes; ray: model actors (default 2)",
    )
    p.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="ray: GPUs per model actor (0: CPU)"
    )


def _dataset(args: argparse.Namespace):
    """The ``--coco`` dataset with its ``--images`` folder (which must exist)."""
    from explorer.coco.dataset import Dataset

    images = Path(args.images) if args.images else None
    if images is not None and not images.is_dir():
        raise ExplorerError(f"{images}: image folder not found")
    return Dataset.open(args.coco, images)


def model_and_data(args: argparse.Namespace):
    """``(dataset, image rows, model)``: the dataset and the model the arguments name."""
    from explorer.coco.export import select_image_rows
    from explorer.models import choose_device, load_model, weights_choice

    dataset = _dataset(args)
    model = load_model(
        args.model,
        weights_choice(args.weights),
        choose_device(args.device),
        encoder=args.encoder,
        dataset_categories=dataset.index.categories,
    )
    if model.untrained:
        print(
            f"warning: {args.model} is UNTRAINED (random weights): its outputs mean nothing",
            file=sys.stderr,
        )
    return dataset, select_image_rows(dataset.index, args.image_ids), model


def two_models(args: argparse.Namespace):
    """``(dataset, image rows, ModelPair)``: the dataset and the ``--classifier`` /
    ``--segmenter`` models the arguments name (a warning for each untrained one)."""
    from explorer.coco.export import select_image_rows
    from explorer.inference.pair import ModelPair, check_role
    from explorer.models import choose_device, load_model, weights_choice
    from explorer.models.tasks import CLASSIFY, SEGMENT

    dataset = _dataset(args)
    device = choose_device(args.device)
    loaded = {}
    for role, kind in (("classifier", CLASSIFY), ("segmenter", SEGMENT)):
        name, weights = getattr(args, role), weights_choice(getattr(args, f"{role}_weights"))
        categories = dataset.index.categories
        m = load_model(name, weights, device, dataset_categories=categories)
        try:
            check_role(m, kind)
        except ExplorerError as e:  # before loading the other model; named by its flag
            raise ExplorerError(f"--{role} {e}") from None
        # what the verdicts rest on: its own validation quality, and a warning when weak
        quality = m.quality
        if m.untrained:
            print(f"warning: the {role} is UNTRAINED (random weights)", file=sys.stderr)
        elif quality.weak:
            print(f"warning: the {role}: {quality.warning()}", file=sys.stderr)
        else:
            print(f"the {role}: {quality.describe()}", file=sys.stderr)
        loaded[role] = m
    pair = ModelPair(**loaded)
    return dataset, select_image_rows(dataset.index, args.image_ids), pair


def run_options(args: argparse.Namespace, label: str):
    """How the command's models run: batch size, loader workers, a progress bar (unless
    ``--quiet``) and the engine."""
    from explorer.inference.options import RunOptions

    return RunOptions(
        batch_size=getattr(args, "batch_size", None),
        workers=args.workers,
        progress=progress_callback(label, args.quiet),
        engine=engine(args),
    )


def on_two_models(args: argparse.Namespace, run, label: str):
    """``run(models, dataset, rows, options=...)`` on what the arguments name, with a progress
    bar and the chosen engine."""
    dataset, rows, pair = two_models(args)
    return run(pair, dataset, rows, options=run_options(args, label))


def engine(args: argparse.Namespace):
    """The engine the arguments ask for: None runs in this process."""
    if args.engine == "local":
        return None
    from explorer.inference.ray_engine import ENV_ADDRESS, RayEngine

    return RayEngine(
        address=args.ray_address or os.environ.get(ENV_ADDRESS) or None,
        workers=max(1, args.workers),
        gpus_per_worker=args.gpus_per_worker,
    )
