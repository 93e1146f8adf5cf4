"""Benchmark: the local engine against Ray, and one training process against two (torchrun),
side by side in one run on this machine.

1. ``predict --crops`` over coco-tiny's val2017 (804 object crops of 80 images, AlexNet with
   seeded random weights): the local engine, then ``--engine ray`` (a new local cluster, its
   start included and reported), each with an empty prediction cache. Crops per second.
2. ``train`` alexnet-classic at 64 px for 2 epochs on the embedded sample: one process, then
   ``torchrun --nproc_per_node=2`` (gloo on the CPU). Seconds per epoch (from metrics.jsonl).

On a GPU machine pass ``--device cuda --gpus-per-worker 1`` (one actor per GPU) and
``--processes N`` (one process per GPU).

usage: python bench/bench_scale.py [--device cpu] [--workers 2] [--gpus-per-worker 0]
       [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT.parent / "shared" / "coco-tiny"


def _run(cmd: list[str], cache: Path) -> float:
    t0 = time.perf_counter()
    env = {**os.environ, "EXPLORER_CACHE": str(cache)}
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0


def engines(tmp: Path, args) -> None:
    import torch
    import torchvision

    torch.manual_seed(0)
    weights = tmp / "alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), weights)
    ann, images = TINY / "annotations" / "instances_val2017.json", TINY / "val2017"
    base = [sys.executable, "-m", "explorer", "predict", "--coco", str(ann), "--images"]
    base += [str(images), "--model", "alexnet", "--weights", str(weights), "--crops", "--quiet"]
    base += ["--device", args.device, "--workers", str(args.workers)]
    crops = 804
    for engine in ("local", "ray"):
        extra = ["--gpus-per-worker", str(args.gpus_per_worker)] if engine == "ray" else []
        out = tmp / f"{engine}.parquet"
        seconds = _run([*base, "--engine", engine, *extra, "--out", str(out)], tmp / engine)
        print(f"predict --engine {engine}: {seconds:.1f} s, {crops / seconds:.1f} crops/s")


def training(tmp: Path, args) -> None:
    sample = tmp / "sample"
    subprocess.run(
        [sys.executable, "-m", "explorer", "sample", "--out", str(sample)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    data = ["--task", "classify", "--model", "alexnet-classic", "--epochs", "2"]
    data += ["--image-size", "64", "--batch-size", "32", "--device", args.device, "--quiet"]
    for key, path in (
        ("coco", "annotations/instances_train2017.json"),
        ("images", "train2017"),
        ("val-coco", "annotations/instances_val2017.json"),
        ("val-images", "val2017"),
    ):
        data += [f"--{key}", str(sample / path)]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    for n in (1, args.processes):
        out = tmp / f"run{n}"
        launch = [sys.executable] if n == 1 else [*torchrun, f"--nproc_per_node={n}"]
        seconds = _run([*launch, "-m", "explorer", "train", *data, "--out", str(out)], tmp / "c")
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        epochs = [r for r in rows if r["kind"] == "epoch"]
        per_epoch = sum(r["seconds"] for r in epochs) / len(epochs)
        print(
            f"train, {n} process(es): {per_epoch:.1f} s/epoch, {seconds:.0f} s in all, "
            f"best val_acc {max(r['val_acc'] for r in epochs):.3f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--gpus-per-worker", type=float, default=0.0)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    print(f"{platform.node()} {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    with tempfile.TemporaryDirectory() as d:
        engines(Path(d), args)
        training(Path(d), args)


if __name__ == "__main__":
    main()
