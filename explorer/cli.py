"""``python -m explorer``: the headless side of COCO Explorer.

Each command parses its arguments, calls the library and prints. A user error
(:class:`explorer.errors.ExplorerError`) exits with status 2 and one line on stderr.
Heavy modules are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from explorer.errors import ExplorerError, storage_error
from explorer.paths import atomic_write_table, check_table_path
from explorer.types import COCO_HOST, COCO_SPLITS, DEVICES, TASKS


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

    bars: list = []  # made at the first call, when the total is known: a bar made before it
    # drew a second, total-less bar ("predict: 0img [00:00, ?img/s]") above the real one

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, unit="img", total=total, leave=False))
        bars[0].total = total
        bars[0].n = done
        bars[0].refresh()

    return update


def _cmd_predict(args: argparse.Namespace) -> int:
    index, images, rows, model = _model_and_data(args)
    out = Path(args.out)
    kw = {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "progress": _progress("predict", args.quiet),
        "engine": _engine(args),
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    index, images, rows, model = _model_and_data(args)
    kw = {
        "batch_size": args.batch_size,
        "workers": args.workers,
        "progress": _progress("evaluate", args.quiet),
        "engine": _engine(args),
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
    missing = result["no_counterpart"]
    if missing:
        scope = "VOC class" if result["labels"] == "voc" else "label in the model"
        print(
            f"note: {len(missing)} categories have no {scope} of the same name, not scored: "
            + ", ".join(missing[:10])
            + (" ..." if len(missing) > 10 else ""),
            file=sys.stderr,
        )
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
    from explorer.training.launch import stop_on_sigterm

    stop_on_sigterm()  # a kill (or torchrun stopping its workers) ends the run "stopped"
    # under torchrun every process runs this; rank 0 alone speaks (and writes the run)
    main = os.environ.get("RANK", "0") == "0"
    progress = _TrainProgress(args.quiet or not main)
    try:
        run = train(cfg, progress, resume=args.resume)
    except Stopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 130
    finally:
        progress.close()
    if not main:
        return 0
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
    from explorer.inference import compare

    report = _on_two_models(args, compare.compare, "compare")
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


def _two_models(args: argparse.Namespace):
    """The dataset, its image folder, the image rows and the ``--classifier`` / ``--segmenter``
    models the arguments name (a warning for each untrained one)."""
    from explorer.coco import open_index
    from explorer.coco.export import select_image_rows
    from explorer.models import choose_device, load_model

    index = open_index(args.coco, images=args.images)
    images = Path(args.images)
    if not images.is_dir():
        raise ExplorerError(f"{images}: image folder not found")
    device = choose_device(args.device)
    loaded = []
    for role, want in (("classifier", "classify"), ("segmenter", "segment")):
        name, weights = getattr(args, role), getattr(args, f"{role}_weights")
        m = load_model(name, weights, device, dataset_categories=index.categories)
        if m.task != want:
            raise ExplorerError(f"--{role} {m.name}: a {m.task} model, not a {role}")
        if m.untrained:
            print(f"warning: the {role} is UNTRAINED (random weights)", file=sys.stderr)
        loaded.append(m)
    return index, images, select_image_rows(index, args.image_ids), *loaded


def _on_two_models(args: argparse.Namespace, run, label: str):
    """``run(classifier, segmenter, index, images, rows, ...)`` on what the arguments name,
    with a progress bar and the chosen engine."""
    index, images, rows, classifier, segmenter = _two_models(args)
    return run(
        classifier,
        segmenter,
        index,
        images,
        rows,
        progress=_progress(label, args.quiet),
        workers=args.workers,
        engine=_engine(args),
    )


def _cmd_mistakes(args: argparse.Namespace) -> int:
    from explorer.inference import mistakes

    out = check_table_path(args.out)
    result = _on_two_models(args, mistakes.find_mistakes, "mistakes")
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


def _cmd_embed(args: argparse.Namespace) -> int:
    from explorer.inference import embeddings

    out = check_table_path(args.out)
    index, images, rows, model = _model_and_data(args)
    result = embeddings.embed(
        model,
        index,
        images,
        rows,
        method=args.method,
        progress=_progress("features", args.quiet),
        workers=args.workers,
        engine=_engine(args),
    )
    atomic_write_table(result.to_frame(), out)
    where = "from the cache" if result.from_cache else f"{args.method} on {model.display_name}"
    unread = f"; {result.unread} crops not read" if result.unread else ""
    print(f"map of {len(result)} objects ({where}){unread} -> {out}")
    return 0


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
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_args(p)


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="where the model runs: this process, or a Ray cluster",
    )
    p.add_argument(
        "--ray-address",
        help="auto (the cluster running here) or ray://HOST:10001; default: "
        "$EXPLORER_RAY_ADDRESS, else a new local cluster",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=2,
        help="local: DataLoader worker processes; ray: model actors (default 2)",
    )
    p.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="ray: GPUs per model actor (0: CPU)"
    )


def _engine(args: argparse.Namespace):
    """The engine the arguments ask for: None runs in this process."""
    if args.engine == "local":
        return None
    from explorer.inference.ray_engine import ENV_ADDRESS, RayEngine

    return RayEngine(
        address=args.ray_address or os.environ.get(ENV_ADDRESS) or None,
        workers=max(1, args.workers),
        gpus_per_worker=args.gpus_per_worker,
    )


def _cmd_download(args: argparse.Namespace) -> int:
    from explorer.coco.download import download_coco, open_command

    if args.workers < 1 or (args.max_images is not None and args.max_images < 1):
        raise ExplorerError("--workers and --max-images take a number of at least 1")
    # bars only on a terminal: in a log they are noise around the one line that matters
    bars = _DownloadBars(sys.stderr) if not args.quiet and sys.stderr.isatty() else None
    try:
        result = download_coco(
            args.dest,
            args.split,
            images=args.images == "all",
            categories=[c.strip() for c in args.categories.split(",")] if args.categories else None,
            max_images=args.max_images,
            workers=args.workers,
            base_url=args.base_url,
            on_progress=bars,
        )
    finally:
        if bars is not None:
            bars.close()
    print(
        f"{result.images_total} images ({result.fetched} fetched now), "
        f"{result.bytes_fetched / 1e6:.1f} MB in {result.seconds:.1f} s",
        file=sys.stderr,
    )
    print(open_command(result))
    return 0


class _DownloadBars:
    """tqdm bars for a download's progress: the annotation zip in bytes, then the images in
    images and in bytes (MB), each with its rate (and ETA when the total is known)."""

    def __init__(self, file) -> None:
        self._file = file
        self._stage = ""
        self._bars: list = []

    def __call__(self, p) -> None:
        from tqdm import tqdm

        if p.stage != self._stage:
            self.close()
            self._stage = p.stage
            common = {"file": self._file, "dynamic_ncols": True}
            mb = {"unit": "B", "unit_scale": True, "unit_divisor": 1000, **common}
            if p.stage == "annotations":
                self._bars = [tqdm(desc="annotations zip", **mb)]
            elif p.stage == "images":
                files = tqdm(desc="images", unit="img", total=p.files_total, **common)
                files.update(p.files_done)
                self._bars = [files, tqdm(desc="received", position=1, **mb)]
        if not self._bars:
            return
        byte_bar = self._bars[-1]
        byte_bar.total = p.bytes_total
        byte_bar.update(p.bytes_done - byte_bar.n)
        if len(self._bars) == 2:
            self._bars[0].update(p.files_done - self._bars[0].n)

    def close(self) -> None:
        for bar in self._bars:
            bar.close()
        self._bars = []


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


def _args_two_models(p: argparse.ArgumentParser) -> None:
    """A dataset, a classifier and a segmenter (compare, mistakes)."""
    p.add_argument("--coco", required=True, help="COCO instances JSON")
    p.add_argument("--images", required=True, help="image folder")
    p.add_argument("--classifier", required=True, help="a registry name or a training run folder")
    p.add_argument("--segmenter", required=True, help="a registry name or a training run folder")
    p.add_argument(
        "--classifier-weights", help="weights file, or 'untrained' (default: published / the run's)"
    )
    p.add_argument(
        "--segmenter-weights", help="weights file, or 'untrained' (default: published / the run's)"
    )
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--image-ids", type=int, nargs="+", help="only these images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_args(p)


def _args_compare(p: argparse.ArgumentParser) -> None:
    _args_two_models(p)
    p.add_argument("--out", required=True, help="report JSON")


def _args_mistakes(p: argparse.ArgumentParser) -> None:
    _args_two_models(p)
    p.add_argument("--out", required=True, help="the table: .parquet, .csv or .jsonl")


def _args_embed(p: argparse.ArgumentParser) -> None:
    _add_model_args(p)
    p.add_argument(
        "--method", default="umap", choices=("umap", "tsne", "pca"), help="2-D map (default umap)"
    )
    p.add_argument("--out", required=True, help="the map: .parquet, .csv or .jsonl")


def _args_anatomy(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a registry name or a training run folder")
    p.add_argument("--input", default="224", help="input size, H or HxW (default 224)")
    p.add_argument("--encoder", help="smp encoder")


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
        "mistakes",
        "suspected annotation mistakes (wrong labels, missing objects, bad masks), ranked",
        _args_mistakes,
        _cmd_mistakes,
    ),
    (
        "embed",
        "the object map: each object's classifier features, reduced to 2-D",
        _args_embed,
        _cmd_embed,
    ),
    (
        "anatomy",
        "the model's layer table (darknet style), parameters and MACs",
        _args_anatomy,
        _cmd_anatomy,
    ),
    (
        "download",
        "COCO's annotations and images from the official host or a mirror",
        _args_download,
        _cmd_download,
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
