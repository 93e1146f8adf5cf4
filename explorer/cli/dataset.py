"""Dataset commands, no model involved: ``sample``, ``stats``, ``export-masks``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.cli.command import Command


def _args_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="folder to write (default: <cache>/sample)")
    p.add_argument("--force", action="store_true", help="rewrite even when already there")


def _cmd_sample(args: argparse.Namespace) -> int:
    from explorer.coco import sample

    root = sample.write_sample(Path(args.out) if args.out else None, force=args.force)
    print(root)
    return 0


def _args_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--images", help="image folder (adds a check for missing files)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _cmd_stats(args: argparse.Namespace) -> int:
    from explorer.coco import stats
    from explorer.coco.dataset import Dataset

    result = stats.summary(Dataset.open(args.coco, args.images))
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(stats.format_summary(result))
    return 0


def _args_export_masks(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--images", help="image folder: sizes the annotation file leaves out are read there"
    )
    p.add_argument(
        "--labels",
        choices=("coco", "voc"),
        default="coco",
        help="pixel values: COCO category ids, or the 21 Pascal-VOC labels",
    )
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _cmd_export_masks(args: argparse.Namespace) -> int:
    from explorer.coco import export, open_index

    index = open_index(args.coco, images=args.images)
    r = export.export_semantic_masks(
        index, Path(args.out), labels=args.labels, image_ids=args.image_ids, progress=not args.quiet
    )
    parts = [f"wrote {r.written} masks to {args.out}"]
    opened = sum(f["count"] for f in r.skipped_opening)
    for n, what in (
        (opened, "records skipped while opening the file (see `stats`)"),
        (len(r.skipped_drawing), "annotations skipped while drawing (bad segmentation)"),
        (len(r.skipped_images), "images without a mask"),
        (len(r.renamed), "masks not named after their image (listed below)"),
    ):
        if n:
            parts.append(f"{n} {what}")
    print("; ".join(parts))
    if r.remapped:
        print(
            f"note: category ids renumbered 1..{len(r.label_map)} (0 is background, 255 overlap);"
            f" {Path(args.out) / export.LABELS_FILE} maps pixel values to categories"
        )
    _print_export_details(r)
    return 0


def _print_export_details(r) -> None:
    """At most 10 lines per kind, on stderr: what was skipped or renamed, and why."""
    for f in r.skipped_opening[:10]:
        print(f"  skipped while opening: {f['count']} x {f['message']}", file=sys.stderr)
    for item in r.skipped_drawing[:10]:
        print(f"  skipped annotation {item['id']}: {item['error']}", file=sys.stderr)
    for item in r.skipped_images[:10]:
        print(f"  no mask for image {item['id']}: {item['error']}", file=sys.stderr)
    for item in r.renamed[:10]:
        print(f"  image {item['id']} {item['file_name'][:80]!r} -> {item['mask']}", file=sys.stderr)


SAMPLE = Command(
    "sample", "write the embedded sample dataset and print where", _args_sample, _cmd_sample
)
STATS = Command("stats", "counts per category and health findings", _args_stats, _cmd_stats)
EXPORT_MASKS = Command(
    "export-masks", "one semantic-mask PNG per image", _args_export_masks, _cmd_export_masks
)
