"""``python -m explorer``: the headless side of COCO Explorer.

Each command parses its arguments, calls the library and prints. A user error
(:class:`explorer.errors.ExplorerError`) exits with status 2 and one line on stderr.
Heavy modules are imported inside the commands that need them.

The commands live by subject, each beside its parser: ``dataset`` (sample, stats,
export-masks), ``models`` (predict, evaluate, anatomy), ``evaluation`` (eval-results),
``training`` (train), ``review`` (compare, mistakes, embed), ``download``; ``loading`` opens
the dataset and models they name, ``progress`` draws their bars.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from explorer.cli import dataset, download, evaluation, models, review, training
from explorer.cli.command import Command
from explorer.errors import ExplorerError, storage_error

# in the order ``--help`` lists them (README's command table follows it: the docs test checks)
_COMMANDS: tuple[Command, ...] = (
    dataset.SAMPLE,
    dataset.STATS,
    dataset.EXPORT_MASKS,
    models.PREDICT,
    models.EVALUATE,
    evaluation.EVAL_RESULTS,
    training.TRAIN,
    review.COMPARE,
    review.MISTAKES,
    review.EMBED,
    models.ANATOMY,
    download.DOWNLOAD,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer", description="COCO Explorer: headless commands."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        p = sub.add_parser(command.name, help=command.help)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe is met here, not in the interpreter's exit
        return code
    except ExplorerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head` closed the pipe: stop quietly, as Python's docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:  # a full disk met by a writer that does not name its folder
        full = storage_error(Path(e.filename).parent if e.filename else "a folder", e)
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
