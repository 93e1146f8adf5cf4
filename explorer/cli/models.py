"""Commands on one model: ``predict`` and ``evaluate`` run it over a dataset, ``anatomy``
prints its layer table."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from explorer.cli.command import Command
from explorer.cli.loading import add_model_args, model_and_data, run_options
from explorer.errors import ExplorerError
from explorer.models.tasks import CLASSIFY, SEGMENT

if TYPE_CHECKING:
    import numpy as np

    from explorer.coco.dataset import Dataset
    from explorer.inference.options import RunOptions


def _args_predict(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--crops", action="store_true", help="classify each annotation's crop, not whole images"
    )
    p.add_argument(
        "--out", required=True, help=".parquet/.csv (classifier) or .json COCO results (segmenter)"
    )


def _cmd_predict(args: argparse.Namespace) -> int:
    dataset, rows, model = model_and_data(args)
    _PREDICTIONS[model.task](model, _Run(dataset, rows, run_options(args, "predict")), args)
    return 0


class _Run(NamedTuple):
    """What a model command runs on, and how."""

    dataset: Dataset
    rows: np.ndarray
    options: RunOptions


def _write_table(model, run: _Run, args: argparse.Namespace) -> None:
    """A classifier's predictions as a table, one row per image (or per crop)."""
    from explorer.inference.classification import classification_table

    out = Path(args.out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ExplorerError(f"{out}: a classifier writes .parquet or .csv")
    table = classification_table(model, run.dataset, args.crops, run.rows, run.options)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)
    bad = int((table["error"] != "").sum())
    print(f"wrote {len(table)} rows to {out}" + (f" ({bad} unreadable images)" if bad else ""))


def _write_coco_results(model, run: _Run, args: argparse.Namespace) -> None:
    """A segmenter's predictions as COCO results (one RLE per category and image)."""
    from explorer.inference.cache import predict
    from explorer.inference.runner import items_for_images
    from explorer.inference.segmentation import coco_results

    if args.crops:
        raise ExplorerError("--crops is for classifiers; a segmenter predicts whole images")
    out, index, rows = Path(args.out), run.dataset.index, run.rows
    results, unreadable = [], []
    for it, output, err in predict(model, run.dataset, items_for_images(index, rows), run.options):
        if output is None:
            unreadable.append(err)
            continue
        results += coco_results(model, index, it.image_row, *output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results))
    read = len(rows) - len(unreadable)
    print(
        f"wrote {len(results)} segmentation results for {read} images to {out}"
        + (f"; {len(unreadable)} unreadable, e.g. {unreadable[0]}" if unreadable else "")
        + (f": {_why_no_results(model, index)}" if read and not results else "")
    )


def _why_no_results(model, index) -> str:
    """Why a segmenter that read its images wrote no result."""
    if all(c is None for c in model.category_of_label(index.categories)):
        names = ", ".join(c["name"] for c in index.categories[:5])
        return (
            f"none of {model.name}'s labels has a category of the same name in this dataset "
            f"({names}{', ...' if len(index.categories) > 5 else ''}); train a segmenter on it"
        )
    why = "no pixel predicted as a category above background"
    return f"{why}: the model is untrained" if model.untrained else why


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--labels", choices=("voc", "coco"), help="segmentation label space (default: the model's)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    dataset, rows, model = model_and_data(args)
    run = _Run(dataset, rows, run_options(args, "evaluate"))
    result = _EVALUATIONS[model.task](model, run, args)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    return 0


def _evaluate_segmenter(model, run: _Run, args: argparse.Namespace) -> Mapping:
    from explorer.inference.segmentation import evaluate_segmentation

    result = evaluate_segmentation(model, run.dataset, run.rows, args.labels, run.options)
    missing = result["no_counterpart"]
    if missing:
        scope = "VOC class" if result["labels"] == "voc" else "label in the model"
        print(
            f"note: {len(missing)} categories have no {scope} of the same name, not scored: "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else ""),
            file=sys.stderr,
        )
    if not args.json:
        print(
            f"{model.display_name} on {result['images']} images ({result['labels']} labels): "
            f"pixel accuracy {result['pixel_acc']:.4f}, mean IoU {result['miou']:.4f}"
        )
        for name, iou in result["per_class_iou"].items():
            print(f"  {name:<16} {'-' if iou is None else f'{iou:.4f}'}")
    return result


def _evaluate_classifier(model, run: _Run, args: argparse.Namespace) -> Mapping:
    from explorer.inference.classification import classification_scores, classification_table

    table = classification_table(model, run.dataset, True, run.rows, run.options)
    result = {
        **classification_scores(model, table, run.dataset.index.categories),
        "model": model.name,
        "weights": model.weights_label,
        "untrained": model.untrained,
    }
    if not args.json:
        print(
            f"{model.display_name}: top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f} on "
            f"{result['objects']} objects ({result['not_comparable']} of categories it cannot "
            "name)"
        )
    return result


def _args_anatomy(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registry name or a training run folder")
    p.add_argument("--input", default="224", help="input size, H or HxW (default 224)")
    p.add_argument("--encoder", help="smp encoder")


def _cmd_anatomy(args: argparse.Namespace) -> int:
    from explorer.models import anatomy, list_models, load_model

    size = args.input.lower().split("x")
    try:
        h, w = int(size[0]), int(size[-1])
    except ValueError:
        raise ExplorerError(f"--input {args.input!r}: give H or HxW, e.g. 227 or 520x693") from None
    if args.model in list_models():
        model = anatomy.architecture(args.model, args.encoder)  # a dataset model: classic layout
        label = "architecture only (random weights: the table does not depend on them)"
    else:
        loaded = load_model(args.model, device="cpu")
        model, label = loaded.module, loaded.display_name
    rows = anatomy.layer_table(model, h, w)
    print(f"{args.model} at {h}x{w}: {label}")
    print(anatomy.format_table(rows))
    return 0


# what each task's model writes and scores: a new task adds its pair here
_PREDICTIONS = {CLASSIFY.name: _write_table, SEGMENT.name: _write_coco_results}
_EVALUATIONS = {CLASSIFY.name: _evaluate_classifier, SEGMENT.name: _evaluate_segmenter}

PREDICT = Command(
    "predict", "run a classifier or a segmenter over the dataset", _args_predict, _cmd_predict
)
EVALUATE = Command(
    "evaluate", "score a model against the ground truth", _args_evaluate, _cmd_evaluate
)
ANATOMY = Command(
    "anatomy",
    "the model's layer table (darknet style), parameters and MACs",
    _args_anatomy,
    _cmd_anatomy,
)
