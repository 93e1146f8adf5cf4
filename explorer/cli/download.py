"""``download``: COCO's annotations and images from the official host or a mirror."""

from __future__ import annotations

import argparse
import sys

from explorer.cli.command import Command
from explorer.cli.progress import DownloadBars
from explorer.errors import ExplorerError
from explorer.types import COCO_HOST, COCO_SPLITS


def _args_download(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=["coco"], help="what to download")
    p.add_argument("--split", required=True, choices=COCO_SPLITS)
    p.add_argument("--dest", required=True, help="the dataset's root folder (created)")
    p.add_argument("--images", default="all", choices=["all", "none"], help="default: all")
    p.add_argument("--categories", help="NAME,...: only images with one of these categories")
    p.add_argument("--max-images", type=int, help="at most N images (a seeded, repeatable choice)")
    p.add_argument("--workers", type=int, default=16, help="images fetched at once (default 16)")
    p.add_argument("--base-url", default=COCO_HOST, help=f"the host (default {COCO_HOST})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _cmd_download(args: argparse.Namespace) -> int:
    from explorer.coco.download import DownloadRequest, DownloadRun, download_coco, open_command

    if args.workers < 1 or (args.max_images is not None and args.max_images < 1):
        raise ExplorerError("--workers and --max-images take a number of at least 1")
    # bars only on a terminal: in a log they are noise around the one line that matters
    bars = DownloadBars(sys.stderr) if not args.quiet and sys.stderr.isatty() else None
    try:
        result = download_coco(
            DownloadRequest(
                args.dest,
                args.split,
                images=args.images == "all",
                categories=tuple(c.strip() for c in args.categories.split(","))
                if args.categories
                else None,
                max_images=args.max_images,
            ),
            DownloadRun(base_url=args.base_url, workers=args.workers, on_progress=bars),
        )
    finally:
        if bars is not None:
            bars.close()
    shared = result.shared_names
    note = (
        f"; {shared} {'shares its' if shared == 1 else 'share their'} file name with another, "
        "fetched once"
        if shared
        else ""
    )
    print(
        f"{result.images_total} images ({result.fetched} fetched now{note}), "
        f"{result.bytes_fetched / 1e6:.1f} MB in {result.seconds:.1f} s",
        file=sys.stderr,
    )
    print(open_command(result))
    return 0


DOWNLOAD = Command(
    "download",
    "COCO's annotations and images from the official host or a mirror",
    _args_download,
    _cmd_download,
)
