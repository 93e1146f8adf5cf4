"""Fault campaign: kill -9 at random moments of index building and of training, and full disks
of several sizes, each followed by the run a user would make next. The figures go into
docs/RELIABILITY.md.

What is checked after each fault:
- index build killed: the next ``stats --json`` gives the same counts as an undisturbed one;
- training killed: ``train --resume`` finishes with one unbroken history (steps 1..N once,
  epochs 1..E once), status "finished", no temporary file left in the run folder;
- full disk (a real tmpfs; needs root): ``sample``, ``predict`` and ``train`` end in exit 0 or
  exit 2 with one ``error:`` line, no traceback, and no temporary file left;
- damaged state (run folders, the prediction cache, the map cache, the index cache, checkpoints,
  a weights path that is a pipe), each followed by what a user runs next (the run list,
  ``predict``, ``embed``, ``stats``, ``evaluate``): exit 0 with the undamaged answer, or exit 2
  with one ``error:`` line; never a traceback or a hang (:func:`damaged_state`).

usage: python -m bench.faults [--index-kills 20] [--train-kills 6] [--seed 0] [--damage-only]
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


# --- damaged state ------------------------------------------------------------------------------

# one damaged file of a run folder each (the others whole), as the probe of issue 22 wrote them
RUN_DAMAGE = {
    "config.json a list": ("config.json", "[1, 2]"),
    "config.json nested 100k deep": ("config.json", "[" * 100_000 + "]" * 100_000),
    "config.json not JSON": ("config.json", "{"),
    "status.json a list": ("status.json", "[1]"),
    "status.json a string epoch": ("status.json", '{"status": "running", "epoch": "3"}'),
    "status.json 1e400": ("status.json", '{"status": "finished", "seconds": 1e400, "best": 1e400}'),
    "status.json nested": ("status.json", '{"epoch": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    "metrics.jsonl without step": ("metrics.jsonl", '{"kind": "epoch", "epoch": 1}\n'),
    "metrics.jsonl epoch 1e400": ("metrics.jsonl", '{"kind": "step", "epoch": 1e400, "step": 1}\n'),
    "metrics.jsonl a list": ("metrics.jsonl", "[1]\n"),
}
_RUN_LIST = (
    "from explorer.training import runs\n"
    "for r in runs.list_runs():\n"
    "    print(r.path.name, r.status, r.epoch, r.seconds, r.best)\n"
    "    runs.run_curves(r.path)\n"
    "print(len(runs.trained_checkpoints('classify')))"
)


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def _judge(r: subprocess.CompletedProcess | None) -> str:
    """bench.fuzz's verdict: "clean" (exit 0), "error" (exit 2 and one ``error:`` line),
    "bad-message", "crash"; "hang" for None (killed at its timeout)."""
    from bench.fuzz import verdict

    return "hang" if r is None else verdict(r.returncode, r.stderr)[0]


def _damaged_runs(work: Path) -> Counter:
    tally: Counter = Counter()
    whole = {
        "config.json": json.dumps({"settings": {"task": "classify", "model": "alexnet-classic"}}),
        "status.json": json.dumps({"status": "finished", "epoch": 1, "best": 0.5}),
        "metrics.jsonl": '{"kind": "step", "epoch": 0.5, "step": 1, "train_loss": 1.0}\n',
    }
    for k, (file, text) in enumerate(RUN_DAMAGE.values()):
        env = _env(work / f"runs{k}")
        run = work / f"runs{k}" / "runs" / "damaged"
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"")
        for name, body in {**whole, file: text}.items():
            (run / name).write_text(body)
        tally[f"run folder, then the run list: {_judge(_python(_RUN_LIST, env))}"] += 1
    return tally


def _sql(db: Path, *statements: str) -> None:
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(db)) as c, c:
        for statement in statements:
            c.execute(statement)


def _nan_records(db: Path) -> None:
    import contextlib
    import sqlite3

    import numpy as np

    with contextlib.closing(sqlite3.connect(db)) as c, c:
        for key, blob in c.execute("SELECT k, v FROM p").fetchall():
            v = np.frombuffer(blob, np.float32).copy()
            v[len(v) // 2] = np.nan
            c.execute("UPDATE p SET v = ? WHERE k = ?", (v.tobytes(), key))


def _replaced(path: Path, make) -> None:
    path.unlink()
    make(path)


PREDICTION_DAMAGE = {
    "truncated": lambda db: db.write_bytes(db.read_bytes()[: db.stat().st_size // 2]),
    "random bytes": lambda db: db.write_bytes(random.Random(0).randbytes(20_000)),
    "a folder in its place": lambda db: _replaced(db, Path.mkdir),
    "a table of another shape": lambda db: _replaced(db, lambda p: _sql(p, "CREATE TABLE p (a)")),
    "3-byte records": lambda db: _sql(db, "UPDATE p SET v = x'010203'"),
    "text records": lambda db: _sql(db, "UPDATE p SET v = 'text'"),
    "NULL records": lambda db: _sql(db, "UPDATE p SET v = NULL"),
    "NaN vectors": _nan_records,
}


def _saved(path: Path, **columns) -> None:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **columns)
    path.write_bytes(buf.getvalue())


def _map_rewritten(path: Path, **changes) -> None:
    import numpy as np

    with np.load(path) as z:
        cols = {k: z[k] for k in z.files}
    path.unlink()
    _saved(path, **{**cols, **{k: f(cols) for k, f in changes.items()}})


def _map_declaring_a_gib(path: Path) -> None:
    """Each member's header declares 1 GiB (2**28 float32 rows); the file stays small."""
    import numpy as np

    with np.load(path) as z:
        n = len(z["x"])
    data = path.read_bytes()
    old = f"'shape': ({n},), }}".encode()  # the header's padding (spaces) follows it
    new = f"'shape': ({1 << 28},), }}".encode()
    forged = data.replace(old + b" " * (len(new) - len(old)), new)
    assert forged != data, "the header was not found"
    path.write_bytes(forged)


MAP_DAMAGE = {
    "zero bytes": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "a folder in its place": lambda p: _replaced(p, Path.mkdir),
    "unequal columns": lambda p: _map_rewritten(p, x=lambda c: c["x"][:-1]),
    "string ids": lambda p: _map_rewritten(
        p, annotation_id=lambda c: c["annotation_id"].astype(str)
    ),
    "headers declaring 1 GiB": _map_declaring_a_gib,
}


def _shorter(column: Path) -> None:
    import numpy as np

    np.save(column, np.load(column)[:5])


INDEX_DAMAGE = {
    "meta.json a list": lambda d: (d / "meta.json").write_text("[1]"),
    "meta.json nested 100k deep": lambda d: (d / "meta.json").write_text(
        "[" * 100_000 + "]" * 100_000
    ),
    "a zero-byte column": lambda d: (d / "instances_area.npy").write_bytes(b""),
    "a column of 5 rows": lambda d: _shorter(d / "instances_id.npy"),
    "a folder as meta.json": lambda d: _replaced(d / "meta.json", Path.mkdir),
}

CHECKPOINT_DAMAGE = {
    "no state_dict": lambda c: c.pop("state_dict"),
    "no class_names": lambda c: c.pop("class_names"),
    "no model": lambda c: c.pop("model"),
    "class_names not a list": lambda c: c.update(class_names=3),
    "a list as state_dict": lambda c: c.update(state_dict=[1, 2]),
    "an unknown preprocessing key": lambda c: c.update(preprocess={"resize": 64, "bogus": 1}),
    "a code-running pickle": None,
}


def _predict_args(data: list[str], out: Path) -> list[str]:
    return [
        *("predict", "--coco", data[5], "--images", data[7], "--crops"),
        *("--model", "alexnet-classic", "--weights", "untrained", "--device", "cpu"),
        *("--workers", "0", "--quiet", "--out", str(out)),
    ]


def _damaged_caches(data: list[str], work: Path) -> Counter:
    """Prediction, map and index caches: written whole by a first run, damaged, then the same
    command again, whose answer must be the first one's."""
    tally: Counter = Counter()
    for k, damage in enumerate(PREDICTION_DAMAGE.values()):
        env, out = _env(work / f"pred{k}"), work / "p.csv"
        first = _cli(*_predict_args(data, out), env=env)
        want = out.read_text() if first.returncode == 0 else None
        (db,) = (work / f"pred{k}" / "predictions").glob("*.sqlite")
        damage(db)
        r = _cli(*_predict_args(data, out), env=env)
        same = r.returncode != 0 or out.read_text() == want
        tally[f"prediction cache, then predict: {_judge(r) if same else 'WRONG ANSWER'}"] += 1
    embed = [
        *("embed", "--coco", data[5], "--images", data[7], "--method", "pca"),
        *("--model", "alexnet-classic", "--weights", "untrained", "--device", "cpu"),
        *("--workers", "0", "--quiet"),
    ]
    for k, damage in enumerate(MAP_DAMAGE.values()):
        env, out = _env(work / f"map{k}"), work / f"map{k}.csv"
        _cli(*embed, "--out", str(out), env=env)
        want = out.read_text()
        (npz,) = (work / f"map{k}" / "maps").glob("*.npz")
        damage(npz)
        r = _cli(*embed, "--out", str(out), env=env)
        same = r.returncode != 0 or out.read_text() == want
        tally[f"map cache, then embed: {_judge(r) if same else 'WRONG ANSWER'}"] += 1
    for k, damage in enumerate(INDEX_DAMAGE.values()):
        env = _env(work / f"index-damage{k}")
        want = _counts(_cli("stats", "--coco", data[1], "--json", env=env).stdout)
        (folder,) = (work / f"index-damage{k}" / "index").iterdir()
        damage(folder)
        r = _cli("stats", "--coco", data[1], "--json", env=env)
        same = r.returncode != 0 or _counts(r.stdout) == want  # counts: not load_seconds
        tally[f"index cache, then stats: {_judge(r) if same else 'WRONG ANSWER'}"] += 1
    return tally


def _damaged_weights(data: list[str], work: Path) -> Counter:
    """Damaged checkpoints and a weights path that is a pipe, given to ``evaluate``."""
    import torch

    sys.path.insert(0, str(ROOT))
    from explorer.models.registry import create_model
    from explorer.models.weights import CHECKPOINT_FORMAT

    tally: Counter = Counter()
    whole = {
        "format": CHECKPOINT_FORMAT,
        "model": "alexnet-classic",
        "task": "classify",
        "label_space": "dataset",
        "class_names": ["a", "b", "c"],
        "category_ids": [1, 2, 3],
        "preprocess": {"resize": 64},
        "state_dict": create_model("alexnet-classic", num_classes=3).state_dict(),
    }
    evaluate = ["evaluate", "--coco", data[5], "--images", data[7], "--device", "cpu"]
    for k, damage in enumerate(CHECKPOINT_DAMAGE.values()):
        path = work / f"damaged{k}.pt"
        if damage is None:
            path.write_bytes(b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x01\x85R.")
        else:
            ckpt = dict(whole)
            damage(ckpt)
            torch.save(ckpt, path)
        r = _cli(*evaluate, "--model", str(path), "--quiet", env=_env(work / "ckpt-cache"))
        ok = _judge(r) == "error" and "weights_only" not in r.stderr
        tally[f"checkpoint, then evaluate: {'error' if ok else _judge(r)}"] += 1
    fifo = work / "weights.pth"
    os.mkfifo(fifo)
    try:
        r = _cli(
            *evaluate, "--model", "alexnet", "--weights", str(fifo), env=_env(work), timeout=120
        )
    except subprocess.TimeoutExpired:
        r = None
    tally[f"weights a pipe, then evaluate: {_judge(r)}"] += 1
    return tally


def damaged_state(data: list[str], work: Path) -> Counter:
    """Every damage of :data:`RUN_DAMAGE`, :data:`PREDICTION_DAMAGE`, :data:`MAP_DAMAGE`,
    :data:`INDEX_DAMAGE` and :data:`CHECKPOINT_DAMAGE`, and a weights pipe, each followed by
    what a user runs next: "clean" (exit 0, the undamaged answer) or "error" (exit 2, one line)
    are the verdicts wanted; "WRONG ANSWER", "crash", "bad-message" and "hang" are failures."""
    return _damaged_runs(work) + _damaged_caches(data, work) + _damaged_weights(data, work)


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
    ap.add_argument("--damage-only", action="store_true", help="only the damaged-state faults")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="faults-"))
    t0 = time.time()
    try:
        data = _tiny_training_data(work)
        ann = Path(data[1]).parent / "train2017.json"
        tally = damaged_state(data, work)
        if not args.damage_only:
            tally += index_kills(ann, args.index_kills, rng, work)
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
