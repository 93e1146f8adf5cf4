"""Benchmark: opening a train2017-scale COCO file, pycocotools versus explorer's index.

Writes (once) a synthetic instances file at train2017 scale — 118,287 images, 860,001 polygon
annotations (about 1% crowd, stored as uncompressed RLE), the 80 COCO categories — then measures,
side by side in one run, each in a fresh process (wall time and peak RSS):

  1. pycocotools: ``COCO(path)`` + per-category counts
  2. explorer cold: ``open_index`` with an empty cache + per-category counts
  3. explorer warm: the same with the cache present
  4. the whole ``python -m explorer stats --json`` process on a warm cache
  5. decoding all instance masks of a typical image (~7 annotations, 640x480), in process

usage: python bench/bench_index.py [--file /tmp/bench_train2017.json] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
COCO_NAMES = (
    "person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant "
    "stop_sign parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe "
    "backpack umbrella handbag tie suitcase frisbee skis snowboard sports_ball kite "
    "baseball_bat baseball_glove skateboard surfboard tennis_racket bottle wine_glass cup fork "
    "knife spoon bowl banana apple sandwich orange broccoli carrot hot_dog pizza donut cake "
    "chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
    "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear "
    "hair_drier toothbrush"
).split()
COCO_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def write_big_file(
    path: Path, n_images: int = 118_287, n_anns: int = 860_001, seed: int = 0
) -> None:
    """A train2017-scale instances file (images are not written)."""
    import msgspec

    rng = np.random.default_rng(seed)
    sizes = np.array([(640, 480), (480, 640), (640, 427), (500, 375), (640, 360)])
    wh = sizes[rng.integers(len(sizes), size=n_images)]
    images = [
        {
            "license": 1,
            "file_name": f"{i:012d}.jpg",
            "coco_url": "",
            "height": int(h),
            "width": int(w),
            "date_captured": "2013-11-14 11:18:45",
            "flickr_url": "",
            "id": i,
        }
        for i, (w, h) in enumerate(wh.tolist(), 1)
    ]
    anns = []
    img_of = rng.integers(n_images, size=n_anns)
    for k in range(1, n_anns + 1):
        w, h = (int(v) for v in wh[img_of[k - 1]])
        cat = COCO_IDS[int(rng.integers(80))]
        r = rng.uniform(4, min(w, h) / 3)
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        ids = {"image_id": int(img_of[k - 1]) + 1, "category_id": cat}
        if rng.random() < 0.01:
            anns.append(_crowd_box(cx, cy, r, w, h, ids, id=900_000_000_000 + k))
        else:
            anns.append(_polygon(cx, cy, r, rng, ids, id=k))
    cats = [
        {"supercategory": "thing", "id": i, "name": n.replace("_", " ")}
        for i, n in zip(COCO_IDS, COCO_NAMES, strict=True)
    ]
    doc = {
        "info": {"description": "synthetic train2017-scale benchmark file"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": cats,
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(doc))
    os.replace(tmp, path)


def _crowd_box(cx: float, cy: float, r: float, w: int, h: int, ids: dict, id: int) -> dict:
    """A crowd annotation: the uncompressed (column-major) RLE of a box. Keys keep the order
    of a real COCO file."""
    x0, y0, bw, bh = int(cx - r), int(cy - r), int(2 * r), int(2 * r)
    starts = np.arange(x0, x0 + bw) * h + y0
    counts = np.empty(2 * bw + 1, np.int64)
    counts[0] = starts[0]
    counts[1:-1:2] = bh
    counts[2:-1:2] = starts[1:] - starts[:-1] - bh
    counts[-1] = w * h - starts[-1] - bh
    return {
        "segmentation": {"counts": counts.tolist(), "size": [h, w]},
        "area": float(bw * bh),
        "iscrowd": 1,
        "image_id": ids["image_id"],
        "bbox": [x0, y0, bw, bh],
        "category_id": ids["category_id"],
        "id": id,
    }


def _polygon(cx: float, cy: float, r: float, rng: np.random.Generator, ids: dict, id: int) -> dict:
    """An annotation whose polygon is a jagged circle of 8 to 40 points."""
    n = int(rng.integers(8, 41))
    t = 2 * math.pi * np.arange(n) / n
    rr = r * rng.uniform(0.6, 1.0, n)
    xs, ys = np.round(cx + rr * np.cos(t), 2), np.round(cy + rr * np.sin(t), 2)
    return {
        "segmentation": [np.stack([xs, ys], 1).ravel().tolist()],
        "area": round(math.pi * r * r * 0.65, 4),
        "iscrowd": 0,
        "image_id": ids["image_id"],
        "bbox": [
            float(xs.min()),
            float(ys.min()),
            round(float(xs.max() - xs.min()), 2),
            round(float(ys.max() - ys.min()), 2),
        ],
        "category_id": ids["category_id"],
        "id": id,
    }


PYCOCO = """
import collections, contextlib, io, sys
from pycocotools.coco import COCO
with contextlib.redirect_stdout(io.StringIO()):
    c = COCO(sys.argv[1])
n = collections.Counter(a['category_id'] for a in c.dataset['annotations'])
print(len(c.anns), sum(n.values()))
"""
EXPLORER = """
import sys
from explorer.coco import stats
from explorer.coco import open_index
index = open_index(sys.argv[1])
counts = stats.category_counts(index)
print(index.num_annotations, int(counts['instances'].sum()))
"""


def timed(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB, and stdout of one process."""
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
        out.seek(0)
        text = out.read().decode()
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024, text


def mask_decode_ms(ann_path: Path, env_cache: str) -> tuple[float, int]:
    os.environ["EXPLORER_CACHE"] = env_cache
    from explorer.coco import masks, open_index

    index = open_index(ann_path)
    n = np.diff(index.images["ann_start"])
    rows = np.flatnonzero(n == 7)[:200]
    masks.instance_masks(index, int(rows[0]))
    t = time.perf_counter()
    for r in rows.tolist():
        masks.instance_masks(index, r)
    return (time.perf_counter() - t) / len(rows) * 1000, len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--file", default="/tmp/bench_train2017.json")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each measurement (best is kept)")
    args = ap.parse_args()
    path = Path(args.file)
    if not path.is_file():
        print(f"writing {path} ...", file=sys.stderr)
        write_big_file(path)
    print(f"file: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    cache = tempfile.mkdtemp(prefix="bench-cache-")
    env = {**os.environ, "EXPLORER_CACHE": cache}
    results: dict[str, list[tuple[float, float]]] = {
        k: [] for k in ("pycocotools", "cold", "warm", "cli")
    }
    try:
        for _ in range(args.repeat):  # interleaved, so machine noise hits all alike
            *ref, ref_out = timed([sys.executable, "-c", PYCOCO, str(path)], env)
            results["pycocotools"].append(tuple(ref))
            shutil.rmtree(cache, ignore_errors=True)
            os.makedirs(cache)
            for key in ("cold", "warm"):
                *got, out = timed([sys.executable, "-c", EXPLORER, str(path)], env)
                assert out == ref_out, f"{key}: counts {out!r} differ from pycocotools' {ref_out!r}"
                results[key].append(tuple(got))
            *got, out = timed(
                [sys.executable, "-m", "explorer", "stats", "--coco", str(path), "--json"], env
            )
            assert json.loads(out)["annotations"] == int(ref_out.split()[0])
            results["cli"].append(tuple(got))
        ms, n_img = mask_decode_ms(path, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    best = {k: min(v) for k, v in results.items()}
    peak = {k: max(r for _, r in v) for k, v in results.items()}
    ref_t, ref_m = best["pycocotools"][0], peak["pycocotools"]
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'':40}{'wall s':>8}{'peak MB':>9}{'speed-up':>10}{'RSS ratio':>11}")
    for key, label in (
        ("pycocotools", "pycocotools COCO() + counts"),
        ("cold", "explorer cold (no cache) + counts"),
        ("warm", "explorer warm (cache) + counts"),
        ("cli", "python -m explorer stats --json, warm"),
    ):
        t, m = best[key][0], peak[key]
        print(f"{label:40}{t:8.2f}{m:9.0f}{ref_t / t:9.1f}x{ref_m / m:10.1f}x")
    print(f"instance masks of a 7-annotation 640x480 image: {ms:.2f} ms (mean of {n_img} images)")
    runs = {k: [[round(t, 2), round(m)] for t, m in v] for k, v in results.items()}
    print(f"all runs: {json.dumps(runs)}")


if __name__ == "__main__":
    main()
