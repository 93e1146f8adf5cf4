"""Your own model's predictions, evaluated as COCO evaluates them: ``eval-results``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from explorer.cli.command import Command


def _args_eval_results(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", required=True, help="the COCO annotation file (ground truth)")
    p.add_argument("--results", required=True, help="a COCO results file (loadRes format)")
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


def _overrides(args: argparse.Namespace) -> dict:
    import numpy as np

    chosen = {
        "image_ids": args.image_ids,
        "category_ids": args.category_ids,
        "max_dets": args.max_dets and tuple(args.max_dets),
        "iou_thresholds": args.iou_thresholds and np.asarray(args.iou_thresholds),
    }
    return {k: v for k, v in chosen.items() if v is not None}


def _cmd_eval_results(args: argparse.Namespace) -> int:
    from explorer.coco.index import open_index
    from explorer.evaluation import outcomes_file, report
    from explorer.evaluation.cocoeval import evaluate
    from explorer.evaluation.params import EvalParams
    from explorer.predictions.results import read_results

    t0 = time.perf_counter()
    index = open_index(args.coco, images=args.images)
    detections = read_results(args.results, index, args.iou_type)
    params = EvalParams.for_iou_type(detections.kind, **_overrides(args))
    evaluation = evaluate(index, detections, params)
    rows = report.category_rows(evaluation, index)
    if args.out:
        outcomes_file.write_outcomes(args.out, evaluation, index, detections, args.outcome_iou)
    seconds = time.perf_counter() - t0
    if args.json:
        json.dump(report.results_json(evaluation, detections, rows, seconds), sys.stdout)
        sys.stdout.write("\n")
    else:
        print(report.results_text(evaluation, detections, rows, seconds))
    return 0


EVAL_RESULTS = Command(
    "eval-results",
    "evaluate a COCO results file against its dataset, exactly as pycocotools' COCOeval",
    _args_eval_results,
    _cmd_eval_results,
)
