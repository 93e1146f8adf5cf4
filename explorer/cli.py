"""``python -m explorer``: the headless side of COCO Explorer.

Each command parses its arguments, calls the library and prints. A user error
(:class:`explorer.errors.ExplorerError`) exits with status 2 and one line on stderr.
Heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from explorer.errors import ExplorerError


def _cmd_sample(args: argparse.Namespace) -> int:
    from explorer.coco import sample

    root = sample.write_sample(Path(args.out) if args.out else None, force=args.force)
    print(root)
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from explorer import stats
    from explorer.coco import open_index

    index = open_index(args.coco)
    result = stats.summary(index, args.images)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(stats.format_summary(result))
    return 0


def _cmd_export_masks(args: argparse.Namespace) -> int:
    from explorer.coco import export, open_index

    index = open_index(args.coco)
    report = export.export_semantic_masks(index, Path(args.out), labels=args.labels,
                                          image_ids=args.image_ids, progress=not args.quiet)
    print(f"wrote {report['written']} masks to {args.out}"
          + (f"; {len(report['skipped'])} annotations skipped (bad segmentation)"
             if report["skipped"] else ""))
    for item in report["skipped"][:10]:
        print(f"  skipped annotation {item['id']}: {item['error']}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m explorer",
                                     description="COCO Explorer: headless commands.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sample", help="write the embedded sample dataset and print where")
    p.add_argument("--out", help="folder to write (default: <cache>/sample)")
    p.add_argument("--force", action="store_true", help="rewrite even when already there")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("stats", help="counts per category and health findings")
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--images", help="image folder (adds a check for missing files)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=_cmd_stats)

    p = sub.add_parser("export-masks", help="one semantic-mask PNG per image")
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--labels", choices=("coco", "voc"), default="coco",
                   help="pixel values: COCO category ids, or the 21 Pascal-VOC labels")
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_export_masks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ExplorerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
