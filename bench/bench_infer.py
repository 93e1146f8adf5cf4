"""Benchmark: images per second, a naive loop versus explorer's batch runner, side by side.

Naive: PIL open -> the weights' transforms -> model, one image at a time, fp32.
Runner: ``explorer.inference.runner.run_paths`` (DataLoader workers, size-bucketed batches,
``inference_mode``; on CUDA bf16 autocast, channels_last, pinned memory, GPU JPEG decode).

Runs with only torch, torchvision, pillow and numpy installed (no streamlit, no pycocotools): it
writes its own synthetic 640x480 JPEGs and uses random weights (throughput does not depend on
them). On CUDA it also reports achieved TFLOP/s (2 x torchvision's GMACs per image) against the
GPU's peak when known.

usage: python bench/bench_infer.py [--device auto|cpu|cuda] [--images 64] [--models alexnet,...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GMACS = {
    "alexnet": 0.714,
    "deeplabv3-mobilenet-v3-large": 10.452,
    "deeplabv3-resnet50": 178.722,
}  # torchvision
BATCH = {
    "alexnet": 32,
    "deeplabv3-mobilenet-v3-large": None,
    "deeplabv3-resnet50": None,
}  # None: the default
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense, SXM


def write_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((640, 480), Image.BILINEAR)
        p = folder / f"{i:06d}.jpg"
        img.save(p, quality=90)
        paths.append(str(p))
    return paths


def naive(model, paths: list[str], device: str) -> float:
    """One image at a time; a segmenter's logits are resized to the image and argmax'ed, as the
    runner's are (the same output, so the comparison is fair)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from explorer.models.registry import published_weights

    transform = published_weights(model.spec).transforms()
    t = time.perf_counter()
    with torch.no_grad():
        for p in paths:
            image = Image.open(p).convert("RGB")
            out = model.module(transform(image)[None].to(device))
            if isinstance(out, dict):
                out = F.interpolate(
                    out["out"], size=image.size[::-1], mode="bilinear", align_corners=False
                )
            out.argmax(1).cpu()
    return len(paths) / (time.perf_counter() - t)


def runner(model, paths: list[str], batch: int, workers: int) -> float:
    from explorer.inference import runner as infer
    from explorer.inference.options import RunOptions

    items = [infer.Item(image_row=n, image_id=n) for n in range(len(paths))]  # whole images
    sizes = [(640, 480)] * len(paths)
    t = time.perf_counter()
    n = sum(1 for _ in infer.run_paths(model, items, paths, sizes, RunOptions(batch, workers)))
    assert n == len(paths)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--models", default="alexnet,deeplabv3-mobilenet-v3-large,deeplabv3-resnet50")
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 2))
    args = ap.parse_args()
    import torch

    from explorer.inference.outputs import codec_for
    from explorer.models import UNTRAINED, choose_device, load_model

    device = choose_device(args.device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    gpu = torch.cuda.get_device_name() if device.startswith("cuda") else ""
    folder = Path(tempfile.mkdtemp(prefix="bench-infer-"))
    paths = write_images(folder, args.images)
    print(
        f"machine: {platform.node()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"device {device}{' (' + gpu + ')' if gpu else ''}, "
        f"{args.images} synthetic 640x480 JPEGs, workers {args.workers}"
    )
    print(
        f"{'model':32}{'batch':>6}{'naive img/s':>13}{'runner img/s':>14}"
        f"{'speed-up':>10}{'TFLOP/s':>9}"
    )
    for name in args.models.split(","):
        model = load_model(name, UNTRAINED, device)
        few = paths[
            : max(8, args.images // (4 if name == "deeplabv3-resnet50" and device == "cpu" else 1))
        ]
        naive(model, few[:2], device)  # warm-up
        batch = BATCH[name] or codec_for(model).default_batch_size(device)
        runner(model, few[:batch], batch, 0)
        slow = naive(model, few, device)
        fast = runner(model, few, batch, args.workers)
        tflops = fast * 2 * GMACS[name] / 1000
        peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in gpu), None)
        extra = f"  ({tflops / peak:.1%} of {peak:.0f} bf16 peak)" if peak else ""
        print(f"{name:32}{batch:6d}{slow:13.1f}{fast:14.1f}{fast / slow:9.2f}x{tflops:9.2f}{extra}")


if __name__ == "__main__":
    main()
