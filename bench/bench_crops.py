"""Benchmark: object crops per second, a plain torchvision loop versus explorer's batch runner.

Plain: for each non-crowd annotation of coco-tiny's val2017 (804 crops of 80 real images), PIL
open -> crop (the box with 10% context) -> the weights' transforms -> AlexNet, batches of 32.
Runner: ``explorer.inference.runner.run`` on the same crops (DataLoader workers, batches of 32).
Random weights (speed does not depend on them); the prediction cache is not used.

usage: python bench/bench_crops.py [--device cpu] [--workers 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY = ROOT.parent / "shared" / "coco-tiny"


def plain(model, index, images: Path, items, batch: int) -> float:
    import torch
    from PIL import Image

    from explorer.coco.images import crop_box
    from explorer.models.registry import published_weights

    transform = published_weights(model.spec).transforms()
    t = time.perf_counter()
    with torch.no_grad():
        for k in range(0, len(items), batch):
            xs = []
            for it in items[k : k + batch]:
                image = Image.open(images / str(index.images["file_name"][it.image_row]))
                image = image.convert("RGB")
                x0, y0, x1, y1 = crop_box(it.box, *image.size)
                xs.append(transform(image.crop((x0, y0, x1, y1))))
            model.module(torch.stack(xs).to(model.device)).softmax(1).cpu()
    return len(items) / (time.perf_counter() - t)


def runner(model, index, images: Path, items, batch: int, workers: int) -> float:
    from explorer.coco.dataset import Dataset
    from explorer.inference import runner as infer
    from explorer.inference.options import RunOptions

    t = time.perf_counter()
    n = sum(1 for _ in infer.run(model, Dataset(index, images), items, RunOptions(batch, workers)))
    assert n == len(items)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import numpy as np
    import torch

    from explorer.coco import open_index
    from explorer.inference.runner import items_for_crops
    from explorer.models import UNTRAINED, choose_device, load_model

    index = open_index(TINY / "annotations" / "instances_val2017.json")
    images = TINY / "val2017"
    items = items_for_crops(index, np.arange(index.num_images))
    device = choose_device(args.device)
    model = load_model("alexnet", UNTRAINED, device)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"device {device}; {len(items)} crops of {index.num_images} images, batch {args.batch}, "
        f"workers {args.workers}"
    )
    runner(model, index, images, items[:64], args.batch, 0)  # warm-up
    best_plain = best_runner = 0.0
    for _ in range(args.repeat):  # interleaved: the machine is shared and noisy
        best_plain = max(best_plain, plain(model, index, images, items, args.batch))
        best_runner = max(
            best_runner, runner(model, index, images, items, args.batch, args.workers)
        )
    print(f"plain torchvision loop: {best_plain:7.1f} crops/s (best of {args.repeat})")
    print(f"explorer runner:        {best_runner:7.1f} crops/s ({best_runner / best_plain:.2f}x)")


if __name__ == "__main__":
    main()
