"""Commands that review a dataset with models: ``compare`` (a classifier versus a segmenter
versus the ground truth), ``mistakes`` (suspected annotation mistakes, ranked) and ``embed``
(the object map)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from explorer.cli.command import Command
from explorer.cli.loading import (
    add_model_args,
    add_two_model_args,
    model_and_data,
    on_two_models,
    run_options,
)
from explorer.paths import atomic_write_table, check_table_path


def _args_compare(p: argparse.ArgumentParser) -> None:
    add_two_model_args(p)
    p.add_argument("--out", required=True, help="report JSON")


def _cmd_compare(args: argparse.Namespace) -> int:
    from explorer.inference import compare

    report = on_two_models(args, compare.compare, "compare")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_json()))
    s = report.summary
    print(
        f"{s['objects']} objects: both right {s['both_right']}, "
        f"only classifier {s['only_classifier_right']}, "
        f"only segmenter {s['only_segmenter_right']}, both wrong {s['both_wrong']}, not comparable "
        f"{s['not_comparable']} -> {out}"
    )
    return 0


def _args_mistakes(p: argparse.ArgumentParser) -> None:
    add_two_model_args(p, required=False)
    p.add_argument(
        "--predictions",
        help="a COCO results file of a detector on this dataset: its confident errors add "
        "'missing' and 'wrong_label' rows (evidence 'detector NAME'); without --classifier and "
        "--segmenter (and --images) the table holds those rows alone",
    )
    p.add_argument(
        "--min-detector-score",
        type=float,
        default=0.5,
        help="the detections whose errors count (default 0.5)",
    )
    p.add_argument("--out", required=True, help="the table: .parquet, .csv or .jsonl")


def _cmd_mistakes(args: argparse.Namespace) -> int:
    from explorer.coco.index import open_index
    from explorer.inference import mistakes
    from explorer.inference.detector_mistakes import file_suspects

    out = check_table_path(args.out)
    models = _wants_models(args)
    rows: list[mistakes.Mistake] = []
    said: list[str] = []
    if models:
        result = on_two_models(args, mistakes.find_mistakes, "mistakes")
        rows += result.rows
        said.append(
            f"{result.objects} objects ({result.judged} a model can name)"
            + (f", {len(result.unread)} images not read" if result.unread else "")
        )
    index = open_index(args.coco)
    if args.predictions:
        found = file_suspects(args.predictions, index, args.min_detector_score, args.image_ids)
        rows += found
        said.append(f"{len(found)} rows from the detector {Path(args.predictions).name}")
    atomic_write_table(mistakes.to_frame(rows), out)
    counts = ", ".join(f"{sum(r['kind'] == k for r in rows)} {k}" for k in mistakes.KINDS)
    _print_top_suspects(rows, {int(c["id"]): str(c["name"]) for c in index.categories})
    print(f"{'; '.join(said)}: {counts} -> {out}")
    return 0


def _wants_models(args: argparse.Namespace) -> bool:
    """Whether the command runs the two models (both given), or the detector alone.

    Raises:
        ExplorerError: one model without the other, or neither models nor ``--predictions``.
    """
    from explorer.errors import ExplorerError

    given = [bool(args.classifier), bool(args.segmenter)]
    if any(given) and not all(given):
        raise ExplorerError(
            "give both --classifier and --segmenter (or neither, with --predictions)"
        )
    if not any(given) and not args.predictions:
        raise ExplorerError("give --classifier and --segmenter, or --predictions, or all three")
    if any(given) and not args.images:
        raise ExplorerError("the models need the images: give --images")
    return all(given)


def _print_top_suspects(rows: list, names: dict[int, str], per_kind: int = 3) -> None:
    from explorer.inference.mistakes import MODELS

    """The best-ranked few of each kind and evidence, one line each (the table has them all)."""
    seen: dict[tuple[str, str], int] = {}
    for r in rows:  # ranked within each kind and evidence
        group = (r["kind"], r["evidence"])
        if seen.get(group, 0) >= per_kind:
            continue
        seen[group] = seen.get(group, 0) + 1
        what = f"annotation {r['annotation_id']}" if r["annotation_id"] >= 0 else "a region"
        box = ", ".join(f"{v:.0f}" for v in r["bbox"])
        whose = "" if r["evidence"] == MODELS else f"  ({r['evidence']})"
        print(
            f"  {r['kind']:<11} {r['score']:.2f}  image {r['image_id']}, {what} [{box}] "
            f"-> {names.get(r['category_id'], '?')} ({r['category_id']}){whose}"
        )


def _args_embed(p: argparse.ArgumentParser) -> None:
    add_model_args(p)
    p.add_argument(
        "--method", default="umap", choices=("umap", "tsne", "pca"), help="2-D map (default umap)"
    )
    p.add_argument("--out", required=True, help="the map: .parquet, .csv or .jsonl")


def _cmd_embed(args: argparse.Namespace) -> int:
    from explorer.inference import embeddings

    out = check_table_path(args.out)
    dataset, rows, model = model_and_data(args)
    result = embeddings.embed(model, dataset, rows, args.method, run_options(args, "features"))
    atomic_write_table(result.to_frame(), out)
    where = "from the cache" if result.from_cache else f"{args.method} on {model.display_name}"
    unread = f"; {result.unread} crops not read" if result.unread else ""
    print(f"map of {len(result)} objects ({where}){unread} -> {out}")
    return 0


COMPARE = Command(
    "compare",
    "classifier versus segmenter versus ground truth, per object and image",
    _args_compare,
    _cmd_compare,
)
MISTAKES = Command(
    "mistakes",
    "suspected annotation mistakes (wrong labels, missing objects, bad masks), ranked",
    _args_mistakes,
    _cmd_mistakes,
)
EMBED = Command(
    "embed",
    "the object map: each object's classifier features, reduced to 2-D",
    _args_embed,
    _cmd_embed,
)
