"""Your own model's predictions, evaluated: ``eval-results``.

What ``--results`` is decides how (:data:`_KINDS`, looked up by what the path is): a COCO
results file as COCO evaluates it, a folder of semantic-mask PNGs by mIoU, a classification
table by accuracy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from explorer.cli.command import Command
from explorer.errors import PredictionsError

if TYPE_CHECKING:
    from explorer.coco.index import CocoIndex


def _args_eval_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", required=True, help="the COCO annotation file (ground truth)")
    p.add_argument(
        "--results",
        required=True,
        help="a COCO results file (.json, loadRes format), a folder of semantic-mask PNGs (as "
        "export-masks writes), or a classification table (.csv / .parquet, as predict writes)",
    )
    p.add_argument(
        "--iou-type",
        choices=("bbox", "segm", "keypoints"),
        help="what to compare (default: what the results' first record holds, as pycocotools)",
    )
    p.add_argument("--images", help="image folder (sizes the annotation file leaves out)")
    p.add_argument(
        "--image-ids", type=int, nargs="+", help="evaluate only these images (params.imgIds)"
    )
    p.add_argument(
        "--category-ids", type=int, nargs="+", help="evaluate only these categories (catIds)"
    )
    p.add_argument(
        "--max-dets", type=int, nargs="+", help="detections per image and category (maxDets)"
    )
    p.add_argument(
        "--iou-thresholds", type=float, nargs="+", help="IoU thresholds (iouThrs; default .5:.95)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument(
        "--out", help="write every object's outcome (TP/FP/FN, match, IoU) to this .parquet"
    )
    p.add_argument(
        "--outcome-iou", type=float, default=0.5, help="the IoU threshold of --out (default 0.5)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _overrides(args: argparse.Namespace) -> dict:
    import numpy as np

    chosen = {
        "image_ids": args.image_ids,
        "category_ids": args.category_ids,
        "max_dets": args.max_dets and tuple(args.max_dets),
        "iou_thresholds": args.iou_thresholds and np.asarray(args.iou_thresholds),
    }
    return {k: v for k, v in chosen.items() if v is not None}


class _Scored(NamedTuple):
    """What a kind's evaluation prints: the ``--json`` object, or text."""

    json: dict
    text: str


class _ResultsKind(NamedTuple):
    """A kind of predictions ``--results`` can be: what it is, in words, the options beyond
    ``--coco``, ``--results``, ``--images``, ``--json`` and ``--quiet`` it reads, and how it is
    read and evaluated."""

    what: str
    options: frozenset[str]
    evaluate: Callable[[CocoIndex, argparse.Namespace, float], _Scored]  # + the clock's start


def _coco_results(index: CocoIndex, args: argparse.Namespace, t0: float) -> _Scored:
    from explorer.evaluation import outcomes_file, report
    from explorer.evaluation.cocoeval import evaluate
    from explorer.evaluation.params import EvalParams
    from explorer.predictions.results import read_results

    detections = read_results(args.results, index, args.iou_type)
    params = EvalParams.for_iou_type(detections.kind, **_overrides(args))
    evaluation = evaluate(index, detections, params)
    rows = report.category_rows(evaluation, index)
    if args.out:
        outcomes_file.write_outcomes(args.out, evaluation, index, detections, args.outcome_iou)
    seconds = time.perf_counter() - t0
    return _Scored(
        report.results_json(evaluation, detections, rows, seconds),
        report.results_text(evaluation, detections, rows, seconds),
    )


def _semantic_masks(index: CocoIndex, args: argparse.Namespace, t0: float) -> _Scored:
    from explorer.cli.progress import progress_callback
    from explorer.evaluation.semantic import evaluate_masks, masks_text
    from explorer.predictions.semantic import open_mask_folder

    masks = open_mask_folder(args.results, index)
    evaluation = evaluate_masks(index, masks, progress_callback("masks", args.quiet))
    seconds = time.perf_counter() - t0
    return _Scored({**evaluation, "seconds": round(seconds, 3)}, masks_text(evaluation, seconds))


def _classification_table(index: CocoIndex, args: argparse.Namespace, t0: float) -> _Scored:
    from explorer.evaluation.classification import (
        classifications_text,
        evaluate_classifications,
    )
    from explorer.predictions.classification import read_classifications

    evaluation = evaluate_classifications(index, read_classifications(args.results, index))
    seconds = time.perf_counter() - t0
    text = classifications_text(evaluation, seconds)
    return _Scored({**evaluation, "seconds": round(seconds, 3)}, text)


_COCO_OPTIONS = frozenset(
    {"iou_type", "image_ids", "category_ids", "max_dets", "iou_thresholds", "out"}
)
_TABLE = _ResultsKind("a classification table", frozenset(), _classification_table)
_KINDS: MappingProxyType[str, _ResultsKind] = MappingProxyType(
    {
        ".json": _ResultsKind("a COCO results file", _COCO_OPTIONS, _coco_results),
        "folder": _ResultsKind("a folder of semantic-mask PNGs", frozenset(), _semantic_masks),
        ".csv": _TABLE,
        ".parquet": _TABLE,
    }
)  # by what the path is: a folder, or a file's suffix


def _results_kind(args: argparse.Namespace) -> _ResultsKind:
    """The kind ``--results`` is; refuses options the kind does not read."""
    path = Path(args.results)
    # any other file is read as COCO results, as before folders and tables were kinds
    kind = _KINDS.get("folder" if path.is_dir() else path.suffix.lower(), _KINDS[".json"])
    extra = sorted(o for o in _COCO_OPTIONS - kind.options if getattr(args, o) is not None)
    if extra:
        given = ", ".join("--" + o.replace("_", "-") for o in extra)
        raise PredictionsError(f"{path}: {given} not for {kind.what}")
    return kind


def _cmd_eval_results(args: argparse.Namespace) -> int:
    from explorer.coco.index import open_index

    t0 = time.perf_counter()
    kind = _results_kind(args)
    scored = kind.evaluate(open_index(args.coco, images=args.images), args, t0)
    if args.json:
        json.dump(scored.json, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(scored.text)
    return 0


EVAL_RESULTS = Command(
    "eval-results",
    "evaluate your predictions against the dataset: a COCO results file exactly as "
    "pycocotools' COCOeval, a folder of semantic-mask PNGs, a classification table",
    _args_eval_results,
    _cmd_eval_results,
)
