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
    add_two_model_args(p)
    p.add_argument("--out", required=True, help="the table: .parquet, .csv or .jsonl")


def _cmd_mistakes(args: argparse.Namespace) -> int:
    from explorer.inference import mistakes

    out = check_table_path(args.out)
    result = on_two_models(args, mistakes.find_mistakes, "mistakes")
    atomic_write_table(mistakes.to_frame(result.rows), out)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.counts().items())
    _print_top_suspects(result.rows, result.names)
    print(
        f"{result.objects} objects ({result.judged} a model can name): {counts} -> {out}"
        + (f"; {len(result.unread)} images not read" if result.unread else "")
    )
    return 0


def _print_top_suspects(rows: list, names: dict[int, str], per_kind: int = 3) -> None:
    """The best-ranked few of each kind, one line each (the table has them all)."""
    seen: dict[str, int] = {}
    for r in rows:  # ranked within each kind
        if seen.get(r["kind"], 0) >= per_kind:
            continue
        seen[r["kind"]] = seen.get(r["kind"], 0) + 1
        what = f"annotation {r['annotation_id']}" if r["annotation_id"] >= 0 else "a region"
        box = ", ".join(f"{v:.0f}" for v in r["bbox"])
        print(
            f"  {r['kind']:<11} {r['score']:.2f}  image {r['image_id']}, {what} [{box}] "
            f"-> {names.get(r['category_id'], '?')} ({r['category_id']})"
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
