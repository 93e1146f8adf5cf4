"""``python -m explorer``: the headless side of COCO Explorer.

Each command parses its arguments, calls the library and prints. A user error
(:class:`explorer.errors.ExplorerError`) exits with status 2 and one line on stderr.
Heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path

from explorer.errors import ExplorerError, storage_error
from explorer.types import DEVICES, TASKS


def _cmd_sample(args: argparse.Namespace) -> int:
    from explorer.coco import sample

    root = sample.write_sample(Path(args.out) if args.out else None, force=args.force)
    print(root)
    return 0


def _cmd_stats(args: argparse.Namespace) -> int:
    from explorer.coco import open_index, stats

    index = open_index(args.coco, images=args.images)
    result = stats.summary(index, args.images)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(stats.format_summary(result))
    return 0


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


def _model_and_data(args: argparse.Namespace):
    """Open the dataset and load the model the arguments name."""
    from explorer.coco import open_index
    from explorer.coco.export import select_image_rows
    from explorer.models import choose_device, load_model

    index = open_index(args.coco, images=args.images)
    images = Path(args.images) if args.images else None
    if images is not None and not images.is_dir():
        raise ExplorerError(f"{images}: image folder not found")
    rows = select_image_rows(index, args.image_ids)
    model = load_model(
        args.model,
        args.weights,
        choose_device(args.device),
        encoder=args.encoder,
        dataset_categories=index.categories,
    )
    if model.untrained:
        print(
            f"warning: {args.model} is UNTRAINED (random weights): its outputs mean nothing",
            file=sys.stderr,
        )
    return index, images, rows, model


def _progress(desc: str, quiet: bool):
    """A tqdm-backed callback (done, total) on stderr."""
    if quiet:
        return None
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="img", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update


def _cmd_predict(args: argparse.Namespace) -> int:
    index, images, rows, model = _model_and_data(args)
    out = Path(args.out)
    kw = {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "progress": _progress("predict", args.quiet),
    }
    if model.task == "classify":
        _write_table(model, index, images, rows, args.crops, out, kw)
    elif args.crops:
        raise ExplorerError("--crops is for classifiers; a segmenter predicts whole images")
    else:
        _write_coco_results(model, index, images, rows, out, kw)
    return 0


def _write_table(model, index, images, rows, crops: bool, out: Path, kw: dict) -> None:
    from explorer.inference.classification import classification_table

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ExplorerError(f"{out}: a classifier writes .parquet or .csv")
    table = classification_table(model, index, images, crops, rows, **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        table.to_parquet(out, index=False)
    else:
        table.to_csv(out, index=False)
    bad = int((table["error"] != "").sum())
    print(f"wrote {len(table)} rows to {out}" + (f" ({bad} unreadable images)" if bad else ""))


def _write_coco_results(model, index, images, rows, out: Path, kw: dict) -> None:
    from explorer.inference.cache import predict
    from explorer.inference.runner import items_for_images
    from explorer.inference.segmentation import coco_results

    results, unreadable = [], []
    for it, output, err in predict(model, index, images, items_for_images(index, rows), **kw):
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
    )


def _cmd_evaluate(args: argparse.Namespace) -> int:
    index, images, rows, model = _model_and_data(args)
    kw = {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "progress": _progress("evaluate", args.quiet),
    }
    if model.task == "segment":
        result = _evaluate_segmenter(model, index, images, rows, args.labels, args.json, kw)
    else:
        result = _evaluate_classifier(model, index, images, rows, args.json, kw)
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    return 0


def _evaluate_segmenter(model, index, images, rows, labels, as_json: bool, kw: dict) -> Mapping:
    from explorer.inference.segmentation import evaluate_segmentation

    result = evaluate_segmentation(model, index, images, rows, labels, **kw)
    if not as_json:
        print(
            f"{model.display_name} on {result['images']} images ({result['labels']} labels): "
            f"pixel accuracy {result['pixel_acc']:.4f}, mean IoU {result['miou']:.4f}"
        )
        for name, iou in result["per_class_iou"].items():
            print(f"  {name:<16} {'-' if iou is None else f'{iou:.4f}'}")
    return result


def _evaluate_classifier(model, index, images, rows, as_json: bool, kw: dict) -> Mapping:
    from explorer.inference.classification import classification_scores, classification_table

    table = classification_table(model, index, images, True, rows, **kw)
    result = {
        **classification_scores(model, table, index.categories),
        "model": model.name,
        "weights": model.weights_label,
        "untrained": model.untrained,
    }
    if not as_json:
        print(
            f"{model.display_name}: top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f} on "
            f"{result['objects']} objects ({result['not_comparable']} of categories it cannot "
            "name)"
        )
    return result


def _cmd_train(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from explorer.training import Stopped, TrainConfig, train

    cfg = TrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    )
    progress = _TrainProgress(args.quiet)
    try:
        run = train(cfg, progress, resume=args.resume)
    except Stopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 130
    finally:
        progress.close()
    status = json.loads((run / "status.json").read_text())
    print(
        f"{run}: best {status['metric']} {status['best']:.4f} at epoch {status['best_epoch']} "
        f"(best.pt; use it with --model {run})"
    )
    if status.get("budget_note") and status["budget_note"] != progress.note:  # not said yet
        print(status["budget_note"])
    return 0


class _TrainProgress:
    """A tqdm bar per epoch on stderr, and one line per finished epoch."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.note = quiet, None, ""

    def __call__(self, event) -> None:
        from explorer.training.events import EpochEnd, Step

        if self.quiet:
            return
        if isinstance(event, Step):
            self._step(event)
        elif isinstance(event, EpochEnd):
            r = event.record
            score = (
                f"val_acc {r['val_acc']:.3f}"
                if "val_acc" in r
                else f"val_miou {r['val_miou']:.3f} pixel_acc {r['val_pixel_acc']:.3f}"
            )
            print(
                f"epoch {r['epoch']}/{event.epochs}: train_loss {r['train_loss']:.4f} val_loss "
                f"{r['val_loss']:.4f} {score} ({r['seconds']:.0f} s, "
                f"{r['images_per_s']:.0f} img/s)",
                file=sys.stderr,
            )
            if event.note != self.note:  # the time budget shortened the plan: say it once
                self.note = event.note
                print(event.note, file=sys.stderr)

    def _step(self, event) -> None:
        from tqdm import tqdm

        desc = f"epoch {event.epoch}/{event.epochs}"
        if self.bar is None or self.bar.desc != desc:
            self.close()
            self.bar = tqdm(total=event.batches, desc=desc, leave=False)
        self.bar.n = event.batch
        self.bar.set_postfix(loss=f"{event.loss:.3f}", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_compare(args: argparse.Namespace) -> int:
    from explorer.coco import open_index
    from explorer.coco.export import select_image_rows
    from explorer.inference import compare
    from explorer.models import choose_device, load_model

    index = open_index(args.coco, images=args.images)
    images = Path(args.images)
    if not images.is_dir():
        raise ExplorerError(f"{images}: image folder not found")
    device = choose_device(args.device)
    classifier = load_model(
        args.classifier, args.classifier_weights, device, dataset_categories=index.categories
    )
    segmenter = load_model(
        args.segmenter, args.segmenter_weights, device, dataset_categories=index.categories
    )
    for m, role in ((classifier, "classifier"), (segmenter, "segmenter")):
        want = "classify" if role == "classifier" else "segment"
        if m.task != want:
            raise ExplorerError(f"--{role} {m.name}: a {m.task} model, not a {role}")
        if m.untrained:
            print(f"warning: the {role} is UNTRAINED (random weights)", file=sys.stderr)
    rows = select_image_rows(index, args.image_ids)
    report = compare.compare(
        classifier,
        segmenter,
        index,
        images,
        rows,
        progress=_progress("compare", args.quiet),
        workers=args.workers,
    )
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


def _cmd_anatomy(args: argparse.Namespace) -> int:
    from explorer.models import anatomy, create_model, get_spec, list_models, load_model

    size = args.input.lower().split("x")
    try:
        h, w = int(size[0]), int(size[-1])
    except ValueError:
        raise ExplorerError(f"--input {args.input!r}: give H or HxW, e.g. 227 or 520x693") from None
    if args.model in list_models():
        head = get_spec(args.model).head_size  # a dataset model's table shows its classic layout
        model = create_model(args.model, num_classes=head, encoder=args.encoder)
        label = "architecture only (random weights: the table does not depend on them)"
    else:
        loaded = load_model(args.model, device="cpu")
        model, label = loaded.module, loaded.display_name
    rows = anatomy.layer_table(model, h, w)
    print(f"{args.model} at {h}x{w}: {label}")
    print(anatomy.format_table(rows))
    return 0


def _add_model_args(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _args_sample(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="folder to write (default: <cache>/sample)")
    p.add_argument("--force", action="store_true", help="rewrite even when already there")


def _args_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--images", help="image folder (adds a check for missing files)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


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


def _args_predict(p: argparse.ArgumentParser) -> None:
    _add_model_args(p)
    p.add_argument(
        "--crops", action="store_true", help="classify each annotation's crop, not whole images"
    )
    p.add_argument(
        "--out", required=True, help=".parquet/.csv (classifier) or .json COCO results (segmenter)"
    )


def _args_evaluate(p: argparse.ArgumentParser) -> None:
    _add_model_args(p)
    p.add_argument(
        "--labels", choices=("voc", "coco"), help="segmentation label space (default: the model's)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def _args_train(p: argparse.ArgumentParser) -> None:
    from explorer.training.config import PRESET_NAMES

    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--coco", required=True, help="training COCO instances JSON")
    p.add_argument("--images", required=True, help="training image folder")
    p.add_argument(
        "--val-coco", help="validation JSON (default: a seeded 20%% of the training images)"
    )
    p.add_argument("--val-images", help="validation image folder")
    p.add_argument(
        "--model",
        required=True,
        help="alexnet-classic, alexnet, smp-deeplabv3, smp-deeplabv3plus, "
        "deeplabv3-mobilenet-v3-large, ...",
    )
    p.add_argument(
        "--encoder", help="smp encoder (resnet18, resnet34, mobilenet_v2, efficientnet-b0, ...)"
    )
    p.add_argument(
        "--pretrained", action="store_true", help="start from published weights when available"
    )
    p.add_argument(
        "--freeze-features", action="store_true", help="alexnet: train only the classifier layers"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument(
        "--preset",
        choices=PRESET_NAMES,
        help="quick: a recipe that trains the sample in minutes on a CPU",
    )
    p.add_argument(
        "--class-weights", action="store_true", help="weight the loss against class imbalance"
    )
    p.add_argument("--dice", action="store_true", help="segment: add a Dice loss")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", help="run folder (default: <cache>/runs/<time>-<task>-<model>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last.pt")
    p.add_argument("--quiet", action="store_true")


def _args_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--coco", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--classifier", required=True, help="a registry name or a training run folder")
    p.add_argument("--segmenter", required=True, help="a registry name or a training run folder")
    p.add_argument(
        "--classifier-weights", help="weights file, or 'untrained' (default: published / the run's)"
    )
    p.add_argument(
        "--segmenter-weights", help="weights file, or 'untrained' (default: published / the run's)"
    )
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--image-ids", type=int, nargs="+")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True, help="report JSON")
    p.add_argument("--quiet", action="store_true")


def _args_anatomy(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registry name or a training run folder")
    p.add_argument("--input", default="224", help="input size, H or HxW (default 224)")
    p.add_argument("--encoder", help="smp encoder")


# (command, help, its arguments, what it runs), in the order ``--help`` lists them
_COMMANDS = (
    ("sample", "write the embedded sample dataset and print where", _args_sample, _cmd_sample),
    ("stats", "counts per category and health findings", _args_stats, _cmd_stats),
    ("export-masks", "one semantic-mask PNG per image", _args_export_masks, _cmd_export_masks),
    ("predict", "run a classifier or a segmenter over the dataset", _args_predict, _cmd_predict),
    ("evaluate", "score a model against the ground truth", _args_evaluate, _cmd_evaluate),
    (
        "train",
        "train a classifier (object crops) or a segmenter (semantic masks)",
        _args_train,
        _cmd_train,
    ),
    (
        "compare",
        "classifier versus segmenter versus ground truth, per object and image",
        _args_compare,
        _cmd_compare,
    ),
    (
        "anatomy",
        "the model's layer table (darknet style), parameters and MACs",
        _args_anatomy,
        _cmd_anatomy,
    ),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m explorer", description="COCO Explorer: headless commands."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_, add_arguments, run in _COMMANDS:
        p = sub.add_parser(name, help=help_)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ExplorerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk met by a writer that does not name its folder
        full = storage_error(Path(e.filename).parent if e.filename else "a folder", e)
        if full is None:
            raise
        print(f"error: {full}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
