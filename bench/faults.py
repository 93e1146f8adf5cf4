"""Fault campaign: kill -9 at random moments of index building and of training, and full disks
of several sizes, each followed by the run a user would make next. The figures go into
docs/RELIABILITY.md.

What is checked after each fault:
- index build killed: the next ``stats --json`` gives the same counts as an undisturbed one;
- training killed: ``train --resume`` finishes with one unbroken history (steps 1..N once,
  epochs 1..E once), status "finished", no temporary file left in the run folder;
- full disk (a real tmpfs; needs root): ``sample``, ``predict`` and ``train`` end in exit 0 or
  exit 2 with one ``error:`` line, no traceback, and no temporary file left.

usage: python -m bench.faults [--index-kills 20] [--train-kills 6] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "explorer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(cache: Path) -> dict:
    return dict(os.environ, EXPLORER_CACHE=str(cache), PYTHONUNBUFFERED="1")


def _counts(stdout: str) -> tuple:
    doc = json.loads(stdout)
    return doc["images"], doc["annotations"], tuple(c["instances"] for c in doc["categories"])


def _kill_after(args: list[str], env: dict, delay: float) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "explorer", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def index_kills(ann: Path, n: int, rng: random.Random, work: Path) -> Counter:
    """Kill ``stats`` while it builds the index cache, then ask again."""
    tally: Counter = Counter()
    want = _counts(_cli("stats", "--coco", str(ann), "--json", env=_env(work / "ref")).stdout)
    t0 = time.perf_counter()
    _cli("stats", "--coco", str(ann), "--json", env=_env(work / "timing"))
    build = time.perf_counter() - t0
    for k in range(n):
        env = _env(work / f"index{k}")
        _kill_after(["stats", "--coco", str(ann), "--json"], env, rng.uniform(0.05, build))
        again = _cli("stats", "--coco", str(ann), "--json", env=env)
        ok = again.returncode == 0 and _counts(again.stdout) == want
        tally["index: next run correct" if ok else "index: next run WRONG"] += 1
    return tally


def _metrics(run: Path) -> tuple[list, list]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    return steps, [r["epoch"] for r in rows if r["kind"] == "epoch"]


def train_kills(data: list[str], n: int, rng: random.Random, work: Path) -> Counter:
    """Kill ``train`` at a random moment of a 3-epoch run, then ``--resume`` it."""
    tally: Counter = Counter()
    base = ["train", "--task", "classify", "--model", "alexnet-classic", "--device", "cpu"]
    base += ["--epochs", "3", "--batch-size", "16", "--workers", "0", "--quiet", *data]
    for k in range(n):
        run, env = work / f"run{k}", _env(work / f"train-cache{k}")
        _kill_after([*base, "--out", str(run)], env, rng.uniform(3, 40))
        if not (run / "config.json").is_file():
            tally["train: killed before the run folder existed (rerun from scratch)"] += 1
            continue
        r = _cli(*base, "--resume", str(run), env=env)
        steps, epochs = _metrics(run)
        status = json.loads((run / "status.json").read_text())["status"]
        left = [p.name for p in run.iterdir() if p.name.endswith(".tmp")]
        ok = (
            r.returncode == 0
            and steps == list(range(1, len(steps) + 1))
            and epochs == [1, 2, 3]
            and status == "finished"
            and not left
        )
        tally["train: resumed, one unbroken history" if ok else "train: resume BROKEN"] += 1
    return tally


def full_disks(sizes_mb: list[int], data: list[str], work: Path) -> Counter:
    """``sample``, ``predict`` and ``train`` on real tmpfs file systems of a few MB."""
    tally: Counter = Counter()
    for mb in sizes_mb:
        disk = work / f"disk{mb}"
        disk.mkdir()
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(disk)], capture_output=True
        )
        if mounted.returncode != 0:
            tally["full disk: not run (mounting a tmpfs needs root)"] += 1
            continue
        try:
            env = _env(disk / "cache")
            runs = [
                _cli("sample", "--out", str(disk / "s"), env=env),
                _cli(
                    *("predict", "--coco", data[5], "--images", data[7], "--crops"),
                    *("--model", "alexnet-classic", "--weights", "untrained", "--device", "cpu"),
                    *("--quiet", "--out", str(disk / "p.parquet")),
                    env=env,
                ),
                _cli(
                    "train",
                    "--task",
                    "classify",
                    "--model",
                    "alexnet-classic",
                    "--device",
                    "cpu",
                    "--epochs",
                    "1",
                    "--batch-size",
                    "16",
                    "--workers",
                    "0",
                    "--out",
                    str(disk / "run"),
                    "--quiet",
                    *data,
                    env=env,
                ),
            ]
            for r in runs:
                lines = [x for x in r.stderr.splitlines() if x.strip() and "it/s" not in x]
                one_line = r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:")
                clean = r.returncode == 0 or one_line
                left = [p for p in disk.rglob("*.tmp")]
                ok = clean and "Traceback" not in r.stderr and not left
                tally["full disk: clean end" if ok else f"full disk: BAD rc={r.returncode}"] += 1
        finally:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
    return tally


def _tiny_training_data(work: Path) -> list[str]:
    """A 24-image train / 12-image val slice of the embedded sample."""
    sys.path.insert(0, str(ROOT))
    from explorer.coco.sample import write_sample

    os.environ["EXPLORER_CACHE"] = str(work / "sample-cache")
    root = write_sample()
    out = []
    for split, n, flag in (("train2017", 24, "--coco"), ("val2017", 12, "--val-coco")):
        doc = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        doc["images"] = doc["images"][:n]
        keep = {im["id"] for im in doc["images"]}
        doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
        (work / f"{split}.json").write_text(json.dumps(doc))
        images = "--images" if flag == "--coco" else "--val-images"
        out += [flag, str(work / f"{split}.json"), images, str(root / split)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--index-kills", type=int, default=20)
    ap.add_argument("--train-kills", type=int, default=6)
    ap.add_argument("--disks", default="1,2,3,5", help="tmpfs sizes in MB")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    t0 = time.time()
    try:
        data = _tiny_training_data(work)
        ann = Path(data[1]).parent / "train2017.json"
        tally = index_kills(ann, args.index_kills, rng, work)
        tally += train_kills(data, args.train_kills, rng, work)
        tally += full_disks([int(x) for x in args.disks.split(",")], data, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{platform.node()} · {os.cpu_count()} CPUs · python {platform.python_version()} · "
        f"{time.strftime('%Y-%m-%d')} · seed {args.seed} · {time.time() - t0:.0f} s\n"
    )
    print("| fault, then the next run | count |\n|---|---:|")
    for what, count in sorted(tally.items()):
        print(f"| {what} | {count} |")


if __name__ == "__main__":
    main()
