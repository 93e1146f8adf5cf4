"""Benchmark: evaluating a results file, pycocotools COCOeval versus faster-coco-eval versus
``python -m explorer eval-results``.

Each contender is the whole process, run fresh (import time, JSON loading, evaluate, accumulate,
summarize), interleaved with the others in one run:

  1. pycocotools: ``COCO(gt)``, ``loadRes(dt)``, ``COCOeval(...)`` evaluate/accumulate/summarize
  2. faster-coco-eval (bench/requirements.txt; skipped when not installed): its pycocotools-like
     API, ``COCO`` + ``COCOeval_faster``
  3. ``python -m explorer eval-results --coco GT --results DT --iou-type K --json`` on an empty
     index cache ("cold", the fair comparison), then again on the cache it left ("warm");
     skipped while the command does not exist

Wall seconds are the best of --repeat; peak memory the worst: the kernel's peak RSS of the
process (the largest one, when it forks) and, sampled every --sample-s, the summed PSS of its
whole process tree (so a forked helper counts once for what it adds). Every contender's 12
stats are compared with pycocotools': a fast wrong answer shows in the last column.

Data, generated once into --data (a folder per parameter set) by ../shared/acceptance's
make_big_coco.py (jagged-circle polygons, 1% crowd as uncompressed RLE, the 80 COCO categories)
and make_predictions.py (seeded perturbation of the truth: misses, duplicates, class swaps,
background false positives, crowd hits, ties; segm results are RLEs of the shifted truth masks;
--scale N repeats each image's detections N times with fresh noise). On the 2-core VM:

  val2017  5,000 images, 36,781 objects; --scale 11: 411,500 bbox records (39 MB, written in
           ~10 s) and as many segm RLEs (~0.65 ms each: ~4.5 minutes, once)
  dense    50 images with 2,000 objects each, folded into 10 categories (--dense-categories) so
           that each image-category has ~200 objects, as a dense detector's do; --scale 1

usage: python bench/bench_eval.py [--cases val2017,dense] [--iou-types bbox,segm] [--repeat 1]
       [--images 5000] [--data /tmp/bench-eval] [--json OUT]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCEPTANCE = ROOT.parent / "shared" / "acceptance"
VAL2017_OBJECTS_PER_IMAGE = 36_781 / 5_000

PYCOCOTOOLS = """
import contextlib, io, json, sys
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
gt, dt, kind = sys.argv[1:4]
with contextlib.redirect_stdout(io.StringIO()):
    g = COCO(gt); d = g.loadRes(dt); e = COCOeval(g, d, kind)
    e.evaluate(); e.accumulate(); e.summarize()
print(json.dumps({"stats": [float(s) for s in e.stats]}))
"""
FASTER_COCO_EVAL = """
import contextlib, io, json, sys
from faster_coco_eval import COCO, COCOeval_faster
gt, dt, kind = sys.argv[1:4]
with contextlib.redirect_stdout(io.StringIO()):
    g = COCO(gt); d = g.loadRes(dt); e = COCOeval_faster(g, d, kind, print_function=print)
    e.evaluate(); e.accumulate(); e.summarize()
print(json.dumps({"stats": [float(s) for s in e.stats]}))
"""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One case's ground truth and one results file of one IoU type."""

    case: str
    iou_type: str
    gt: Path
    results: Path
    objects: int
    records: int


@dataclasses.dataclass
class Run:
    """One process: wall and CPU seconds, kernel peak RSS and sampled tree PSS (MB), stats."""

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    tree_pss_mb: float
    stats: list[float] | None
    failure: str = ""


@dataclasses.dataclass
class Contender:
    """How to start one contender on a dataset; ``cache`` is its EXPLORER_CACHE (None: unset)."""

    name: str
    argv: list[str]
    cache: Path | None = None
    clear_cache: bool = False


# --- data ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """A ground truth to generate: its size, how many categories hold its objects (None: the 80
    of make_big_coco.py), and the make_predictions.py --scale of its results files."""

    name: str
    images: int
    objects: int
    categories: int | None
    scale: int


def ground_truth(data: Path, case: Case, seed: int) -> Path:
    """The case's instances file, written once into a folder named by its parameters."""
    keep = f"-c{case.categories}" if case.categories else ""
    folder = data / f"{case.name}-i{case.images}-a{case.objects}{keep}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    gt = folder / "gt.json"
    if not gt.is_file():
        tmp = gt.with_name("gt.json.part")
        script = str(ACCEPTANCE / "make_big_coco.py")
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, script, str(tmp), "--images", str(case.images)]
            + ["--anns", str(case.objects), "--seed", str(seed)],
            check=True,
        )
        if case.categories:
            keep_categories(tmp, case.categories)
        os.replace(tmp, gt)
        seconds = round(time.perf_counter() - t, 1)
        gt.with_suffix(".meta.json").write_text(json.dumps({"seconds": seconds}))
        _note(
            f"{case.name}: wrote {gt} ({case.images} images, {case.objects} objects) in {seconds} s"
        )
    return gt


def keep_categories(path: Path, k: int) -> None:
    """Fold the objects into the first k categories (the i-th category's objects go to category
    i mod k), so that each image has many objects of each class: the dense case's IoU matrices
    are then as large as a dense detector's, not 80 small ones."""
    doc = json.loads(path.read_text())
    ids = [c["id"] for c in doc["categories"]]
    fold = {cid: ids[i % k] for i, cid in enumerate(ids)}
    for ann in doc["annotations"]:
        ann["category_id"] = fold[ann["category_id"]]
    doc["categories"] = doc["categories"][:k]
    path.write_text(json.dumps(doc, separators=(",", ":")))


def results_file(gt: Path, iou_type: str, scale: int, seed: int) -> tuple[Path, int]:
    """The results file (generated once) and its number of records."""
    out = gt.with_name(f"{iou_type}-x{scale}-s{seed}.json")
    meta = out.with_suffix(".meta.json")
    if not (out.is_file() and meta.is_file()):
        tmp = out.with_name(out.name + ".part")
        script = str(ACCEPTANCE / "make_predictions.py")
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, script, str(gt), str(tmp), "--kind", iou_type]
            + ["--scale", str(scale), "--seed", str(seed)],
            check=True,
            capture_output=True,
            text=True,
        )
        records = int(done.stdout.strip().splitlines()[-1].split()[0])  # "N bbox results on .."
        seconds = time.perf_counter() - t
        os.replace(tmp, out)
        meta.write_text(json.dumps({"records": records, "seconds": round(seconds, 1)}))
        _note(f"wrote {out} ({records} records) in {seconds:.1f} s")
    return out, json.loads(meta.read_text())["records"]


def datasets(args: argparse.Namespace) -> list[Dataset]:
    cases = {
        "val2017": Case(
            "val2017", args.images, round(args.images * VAL2017_OBJECTS_PER_IMAGE), None, args.scale
        ),
        "dense": Case(
            "dense",
            args.dense_images,
            args.dense_images * args.dense_objects,
            args.dense_categories,
            args.dense_scale,
        ),
    }
    out = []
    for case in (cases[name] for name in args.cases):
        gt = ground_truth(args.data, case, args.seed)
        for kind in args.iou_types:
            path, records = results_file(gt, kind, case.scale, args.seed + 1)
            out.append(Dataset(case.name, kind, gt, path, case.objects, records))
    return out


# --- one measured process ------------------------------------------------------------------


def _children(pids: set[int]) -> set[int]:
    """The processes whose parent is in ``pids`` (a /proc scan: no psutil needed)."""
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid in pids:
            found.add(int(entry.name))
    return found


def tree_pss_kb(root: int) -> int:
    """Summed proportional set size of a process and all its descendants, in KB."""
    tree, frontier = {root}, {root}
    while frontier:
        frontier = _children(frontier) - tree
        tree |= frontier
    total = 0
    for pid in tree:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total


def measure(argv: list[str], env: dict, timeout: float, sample_s: float) -> Run:
    """Start one process, sample its tree's PSS until it ends (a pidfd wakes this up the moment
    it does, so sampling adds nothing to its wall time), and reap it with wait4, whose rusage is
    this child's alone: its peak RSS and CPU time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
        pss, timed_out = _sample_until_exit(proc.pid, t + timeout, sample_s)
        seconds = time.perf_counter() - t
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    run = Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, pss / 1024, None)
    if timed_out:
        run.failure = f"timed out after {timeout:.0f} s"
    elif proc.returncode:
        last = (stderr.strip().splitlines() or [""])[-1]
        run.failure = f"exit {proc.returncode}: {last[:160]}"
    else:
        try:
            run.stats = [float(s) for s in _last_json(stdout)["stats"]]
        except (ValueError, KeyError, IndexError, TypeError):
            run.failure = f"no stats in its output: {stdout[-160:]!r}"
    return run


def _sample_until_exit(pid: int, deadline: float, sample_s: float) -> tuple[int, bool]:
    """The peak tree PSS (KB) until the process exits, and whether it was killed at the
    deadline (its whole process group: the one this script started for it)."""
    fd, pss = os.pidfd_open(pid), 0
    try:
        while True:
            pss = max(pss, tree_pss_kb(pid))
            if select.select([fd], [], [], max(sample_s, 0.01))[0]:
                return pss, False
            if time.perf_counter() > deadline:
                os.killpg(pid, signal.SIGKILL)
                return pss, True
    finally:
        os.close(fd)


def _last_json(stdout: str) -> dict:
    """The JSON object a contender printed: all of its output, or else its last line."""
    try:
        return json.loads(stdout)
    except ValueError:
        return json.loads(stdout.strip().splitlines()[-1])


# --- contenders ----------------------------------------------------------------------------


def explorer_available() -> str:
    """Empty when ``python -m explorer eval-results`` exists, else why it is skipped."""
    done = subprocess.run(
        [sys.executable, "-m", "explorer", "eval-results", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode == 0:
        return ""
    if "invalid choice" in done.stderr:
        return "`python -m explorer eval-results` does not exist on this branch yet"
    return f"`eval-results --help` exited {done.returncode}: {done.stderr.strip()[-160:]}"


def contenders(names: list[str], data: Dataset, cache: Path) -> list[Contender]:
    files = [str(data.gt), str(data.results), data.iou_type]
    ours = [sys.executable, "-m", "explorer", "eval-results", "--coco", files[0]]
    ours += ["--results", files[1], "--iou-type", files[2], "--json"]
    every = {
        "pycocotools": [Contender("pycocotools", [sys.executable, "-c", PYCOCOTOOLS, *files])],
        "faster-coco-eval": [
            Contender("faster-coco-eval", [sys.executable, "-c", FASTER_COCO_EVAL, *files])
        ],
        # cold then warm, in this order: the warm run reads the index the cold one wrote
        "explorer": [
            Contender("explorer eval-results, cold cache", ours, cache, clear_cache=True),
            Contender("explorer eval-results, warm cache", ours, cache),
        ],
    }
    return [c for name in names for c in every[name]]


def skipped(names: list[str]) -> dict[str, str]:
    """The contenders that cannot run here, with why."""
    out = {}
    if "faster-coco-eval" in names and importlib.util.find_spec("faster_coco_eval") is None:
        out["faster-coco-eval"] = (
            "faster-coco-eval is not installed (pip install -r bench/requirements.txt)"
        )
    if "explorer" in names and (why := explorer_available()):
        out["explorer"] = why
    return out


def run_contender(c: Contender, args: argparse.Namespace) -> Run:
    env = dict(os.environ)
    if c.cache is not None:
        if c.clear_cache:
            shutil.rmtree(c.cache, ignore_errors=True)
        c.cache.mkdir(parents=True, exist_ok=True)
        env["EXPLORER_CACHE"] = str(c.cache)
    return measure(c.argv, env, args.timeout, args.sample_s)


def bench_dataset(data: Dataset, names: list[str], args: argparse.Namespace) -> dict:
    """All runs of every contender on one dataset, interleaved: repeat r starts at contender r
    (explorer's cold and warm runs stay together), so machine noise hits all alike."""
    cache = Path(tempfile.mkdtemp(prefix="bench-eval-cache-"))
    runs: dict[str, list[Run]] = {}
    try:
        for r in range(args.repeat):
            order = names[r % len(names) :] + names[: r % len(names)]
            for c in contenders(order, data, cache):
                _note(f"{data.case} {data.iou_type}: {c.name} (run {r + 1}/{args.repeat})")
                run = run_contender(c, args)
                _note(f"  {run.seconds:.2f} s, {run.peak_rss_mb:.0f} MB {run.failure}")
                runs.setdefault(c.name, []).append(run)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return runs


# --- report --------------------------------------------------------------------------------


def summarize(data: Dataset, runs: dict[str, list[Run]]) -> list[dict]:
    """One row per contender: best wall, worst memory, stats' max |difference| to pycocotools."""
    rows = []
    ref = runs.get("pycocotools", [])
    ref_stats = next((r.stats for r in ref if r.stats), None)
    for name, those in runs.items():
        good = [r for r in those if not r.failure]
        row = {
            "case": data.case,
            "iou_type": data.iou_type,
            "objects": data.objects,
            "records": data.records,
            "contender": name,
            "failures": [r.failure for r in those if r.failure],
            "runs": [dataclasses.asdict(r) | {"stats": None} for r in those],
        }
        if good:
            stats = good[-1].stats or []
            row |= {
                "seconds": min(r.seconds for r in good),
                "cpu_seconds": min(r.cpu_seconds for r in good),
                "peak_rss_mb": max(r.peak_rss_mb for r in good),
                "tree_pss_mb": max(r.tree_pss_mb for r in good),
                "stats": stats,
                "max_abs_stats_diff": _stats_diff(stats, ref_stats),
            }
        rows.append(row)
    return rows


def _stats_diff(stats: list[float], ref: list[float] | None) -> float | None:
    if ref is None:
        return None
    if len(stats) < len(ref):
        return float("inf")  # fewer numbers than pycocotools' is a wrong answer too
    return max(abs(a - b) for a, b in zip(stats, ref, strict=False))


def table(rows: list[dict]) -> str:
    lines = [
        "| case | iou | records | contender | wall s | CPU s | peak RSS MB | tree PSS MB "
        "| vs pycocotools | max abs diff of stats |",
        "|---|---|---:|---|---:|---:|---:|---:|---|---:|",
    ]
    ref = {(r["case"], r["iou_type"]): r for r in rows if r["contender"] == "pycocotools"}
    for r in rows:
        name = r["contender"]
        if r["failures"]:
            name += f" ({len(r['failures'])} of {len(r['runs'])} runs failed)"
        head = f"| {r['case']} | {r['iou_type']} | {r['records']:,} | {name} "
        if "seconds" not in r:
            lines.append(head + f"| failed: {'; '.join(r['failures'])[:200]} |" + " |" * 5)
            continue
        base = ref.get((r["case"], r["iou_type"]), {})
        ratio = "n/a"
        if "seconds" in base:
            speed = base["seconds"] / r["seconds"]
            ratio = f"{speed:.2f}x speed, {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x RSS"
        diff = r["max_abs_stats_diff"]
        agree = "n/a" if diff is None else f"{diff:.1e}" + (" **differs**" if diff > 1e-9 else "")
        lines.append(
            head + f"| {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['peak_rss_mb']:.0f} "
            f"| {r['tree_pss_mb']:.0f} | {ratio} | {agree} |"
        )
    return "\n".join(lines)


def describe(data: Dataset) -> str:
    """Where a dataset's files are, their sizes, and how long they took to write (when known)."""

    def written(path: Path) -> str:
        meta = path.with_suffix(".meta.json")
        took = json.loads(meta.read_text()).get("seconds") if meta.is_file() else None
        size = f"{path.stat().st_size / 1e6:.0f} MB"
        return f"{path} ({size}, written in {took} s)" if took is not None else f"{path} ({size})"

    return (
        f"- {data.case} {data.iou_type}: {data.objects:,} objects in {written(data.gt)}; "
        f"{data.records:,} records in {written(data.results)}"
    )


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _csv(choices: tuple[str, ...]):
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}; got {text!r}")
        return items

    return parse


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=_csv(("val2017", "dense")), default=["val2017", "dense"])
    ap.add_argument("--iou-types", type=_csv(("bbox", "segm")), default=["bbox", "segm"])
    ap.add_argument(
        "--contenders",
        type=_csv(("pycocotools", "faster-coco-eval", "explorer")),
        default=["pycocotools", "faster-coco-eval", "explorer"],
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of each contender (best is kept)")
    ap.add_argument(
        "--images",
        type=int,
        default=5_000,
        help="val2017 case: images (objects scale with them, 36,781 at 5,000)",
    )
    ap.add_argument(
        "--scale",
        type=int,
        default=11,
        help="val2017 case: make_predictions --scale (11: ~416k records at 5,000 images)",
    )
    ap.add_argument("--dense-images", type=int, default=50)
    ap.add_argument("--dense-objects", type=int, default=2_000, help="per image")
    ap.add_argument(
        "--dense-categories",
        type=int,
        default=10,
        help="the dense case's objects are folded into this many categories (0: all 80)",
    )
    ap.add_argument("--dense-scale", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--data",
        type=Path,
        default=Path("/tmp/bench-eval"),
        help="where generated files are kept (named by their parameters)",
    )
    ap.add_argument("--timeout", type=float, default=1800, help="seconds, per process")
    ap.add_argument(
        "--sample-s",
        type=float,
        default=0.2,
        help="PSS sampling interval (one sample: ~4 ms of CPU for a 2 GB process)",
    )
    ap.add_argument("--json", type=Path, help="also write every row and run here")
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if not (ACCEPTANCE / "make_big_coco.py").is_file():
        sys.exit(f"bench_eval: no generators in {ACCEPTANCE} (../shared/acceptance)")
    notes = skipped(args.contenders)
    names = [n for n in args.contenders if n not in notes]
    rows, described = [], []
    for data in datasets(args):
        described.append(describe(data))
        rows += summarize(data, bench_dataset(data, names, args))
    command = "python bench/bench_eval.py " + " ".join(sys.argv[1:])
    print(
        f"{datetime.date.today()}: {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(f"command: `{command.strip()}`; wall: best of {args.repeat}, memory: worst")
    print("\n".join(described))
    print()
    print(table(rows))
    for name, why in notes.items():
        print(f"\nskipped {name}: {why}")
    if args.json:
        args.json.write_text(
            json.dumps({"command": command, "skipped": notes, "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
