"""Benchmark: where a classifier training step's time goes, recipes side by side.

One process, the variants interleaved round by round (other processes on a shared machine slow
every variant alike), each step split into augment / forward+backward / optimiser step. The
model is alexnet-classic for 7 classes with random weights; the crops are random uint8 squares
(the time does not depend on their content).

usage: python bench/bench_train.py [--rounds 3] [--steps 3] [--batch 64]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = {
    # name: (image size, fused AdamW, channels_last); "before" was the quick preset until 2026-11
    "before 227": (227, False, False),
    "227 fused": (227, True, False),
    "227 fused cl": (227, True, True),
    "128 fused": (128, True, False),
    "after 128 fused cl": (128, True, True),
}


def _setup(size: int, fused: bool, channels_last: bool, batch: int):
    import torch

    from explorer.models import create_model

    torch.manual_seed(0)
    model = create_model("alexnet-classic", 7)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, fused=fused, foreach=not fused)
    load = 256 if size > 200 else int(size * 1.14)
    crops = torch.randint(0, 255, (batch, 3, load, load), dtype=torch.uint8)
    targets = torch.randint(0, 7, (batch,))
    return model, opt, crops, targets


def _step(model, opt, crops, targets, size: int, channels_last: bool) -> tuple[float, ...]:
    import torch
    import torch.nn.functional as F

    from explorer.training import data

    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    x = data.normalise(data.augment_crops(crops, size, gen))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    t1 = time.perf_counter()
    loss = F.cross_entropy(model(x), targets, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    import numpy as np
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    setups = {k: _setup(*v, args.batch) for k, v in VARIANTS.items()}
    times: dict[str, list] = {k: [] for k in VARIANTS}
    for k, (model, opt, crops, targets) in setups.items():  # warm-up: first-call allocations
        _step(model, opt, crops, targets, VARIANTS[k][0], VARIANTS[k][2])
    for _ in range(args.rounds):
        for k, (model, opt, crops, targets) in setups.items():
            for _ in range(args.steps):
                times[k].append(_step(model, opt, crops, targets, VARIANTS[k][0], VARIANTS[k][2]))
    print(
        f"{platform.node()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}, median of {args.rounds * args.steps} steps (ms)"
    )
    print(f"{'variant':16} {'augment':>8} {'fwd+bwd':>8} {'opt':>8} {'step':>8} {'img/s':>8}")
    for k, t in times.items():
        a, f, o = np.median(np.array(t), axis=0) * 1000
        s = a + f + o
        print(f"{k:16} {a:8.0f} {f:8.0f} {o:8.0f} {s:8.0f} {args.batch / s * 1000:8.1f}")


if __name__ == "__main__":
    main()
