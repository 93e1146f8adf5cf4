"""Fuzzing the COCO reader: a generator of bad COCO files, and a campaign that runs them through the
command line.

The generator (:func:`cases`) mutates small COCO documents (the embedded sample, coco-tiny when
present, and the one-image file of the acceptance check) the ways real exports and hostile files
differ from COCO: fields dropped, nulled or retyped; huge, negative, NaN and string numbers;
polygons with huge coordinates or nulls; RLEs whose counts do not sum to h×w; duplicate, string
and zero ids; missing sizes; Windows and hostile file names; and whole files that are not COCO
(truncated, invalid UTF-8, BOM, deep nesting, a top-level list, a panoptic file). A case is a
name and the bytes of a file, the same for the same seed. ``tests/coco/test_fuzz.py`` runs a
bounded set of them in CI; this script runs a longer campaign.

The promise checked: every input ends in exit 0, or exit 2 with exactly one ``error:`` line on
stderr; never a traceback, a signal, a hang or a memory blow-up.

usage: python -m bench.fuzz [--cases 1000] [--seed 0] [--jobs 2] [--timeout 60] [--mem-gb 6]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COCO_TINY = ROOT.parent / "shared" / "coco-tiny" / "annotations" / "instances_val2017.json"

# Values that have broken a parser somewhere: int64 and uint32 edges, floats JSON cannot hold,
# numbers as strings, containers where scalars belong.
NASTY = [
    None, True, "", "1", "NaN", "x", [], {}, [1, 2], 0, -1, 1.5, 2**31, 2**32 + 1, 2**53 + 1,
    2**63, -(2**63) - 1, 2**64, 2**70, 1e12, 1e308, -1e308, math.nan, math.inf, -math.inf,
]
RECORDS = ("images", "annotations", "categories")


@dataclass(frozen=True)
class Case:
    """One input file: a name saying what was done, and its bytes."""

    name: str
    data: bytes


# --- base documents ---------------------------------------------------------------------------


def one_image_doc() -> dict:
    """The one-image, one-polygon file of the acceptance check (shared/acceptance/bad-inputs)."""
    return {
        "images": [{"id": 397133, "file_name": "000000397133.jpg", "width": 640, "height": 427}],
        "categories": [{"id": 1, "name": "person", "supercategory": "person"},
                       {"id": 3, "name": "car", "supercategory": "vehicle"}],
        "annotations": [{"id": 1, "image_id": 397133, "category_id": 1, "iscrowd": 0,
                         "area": 400.0, "bbox": [10, 10, 20, 20],
                         "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]}],
    }


def subset(doc: dict, n: int, rng: random.Random) -> dict:
    """``n`` random images of a COCO document with their annotations (inputs stay small, so that a
    few hundred cases run in seconds)."""
    images = rng.sample(doc["images"], min(n, len(doc["images"])))
    keep = {im["id"] for im in images}
    anns = [a for a in doc["annotations"] if a["image_id"] in keep]
    return {"info": doc.get("info", {}), "images": images, "annotations": anns,
            "categories": doc["categories"]}


def base_documents(sample_annotations: Path | None = None) -> list[dict]:
    """The documents mutated: the one-image file, the sample's val split (with its crowd RLEs)
    and coco-tiny's, each when present."""
    docs = [one_image_doc()]
    for path in (sample_annotations, COCO_TINY):
        if path is not None and Path(path).is_file():
            docs.append(json.loads(Path(path).read_text()))
    return docs


# --- mutations of one document ----------------------------------------------------------------


def _record(doc: dict, rng: random.Random, kind: str | None = None) -> tuple[str, dict] | None:
    kinds = [k for k in ([kind] if kind else RECORDS) if doc.get(k)]
    if not kinds:
        return None
    k = rng.choice(kinds)
    return k, rng.choice(doc[k])


def m_field(doc: dict, rng: random.Random) -> str:
    """Drop a field of a record, or set it to a nasty value."""
    picked = _record(doc, rng)
    if picked is None:
        return "empty"
    kind, rec = picked
    key = rng.choice(sorted(rec) or ["id"])
    if rng.random() < 0.3:
        rec.pop(key, None)
        return f"{kind}.{key}=dropped"
    value = rng.choice(NASTY)
    rec[key] = value
    return f"{kind}.{key}={value!r}"[:60]


def m_polygon(doc: dict, rng: random.Random) -> str:
    """Polygons with huge, NaN, null or string coordinates, odd lengths, or too few points."""
    picked = _record(doc, rng, "annotations")
    if picked is None:
        return "empty"
    ann = picked[1]
    n = rng.choice([1, 2, 3, 5, 8, 40, 200])
    how = rng.choice(["huge", "null", "string", "nan", "odd", "few", "nested", "negative"])
    coords = [float(rng.randint(0, 600)) for _ in range(2 * n)]
    if how == "huge":
        coords = [rng.choice([1e7, 1e10, 1e12, 3e38, 1e300]) * rng.random() for _ in coords]
    elif how in ("null", "string", "nan"):
        coords[rng.randrange(len(coords))] = {"null": None, "string": "30", "nan": math.nan}[how]
    elif how == "odd":
        coords = coords[:-1]
    elif how == "few":
        coords = coords[:4]
    elif how == "nested":
        coords = [coords]
    elif how == "negative":
        coords = [-c for c in coords]
    ann["segmentation"] = [coords] if rng.random() < 0.8 else [coords, []]
    return f"polygon {how} n={n}"


def _size_of(doc: dict, ann: dict) -> tuple[int, int]:
    for im in doc.get("images", []):
        if isinstance(im, dict) and im.get("id") == ann.get("image_id"):
            h, w = im.get("height"), im.get("width")
            if isinstance(h, int) and isinstance(w, int):
                return h, w
    return 480, 640


def m_rle(doc: dict, rng: random.Random) -> str:
    """Uncompressed or compressed RLEs that do not describe an h×w mask."""
    picked = _record(doc, rng, "annotations")
    if picked is None:
        return "empty"
    ann = picked[1]
    h, w = _size_of(doc, ann)
    how = rng.choice(["short", "long", "negative", "huge", "float", "null", "garbage", "size",
                      "size_string", "empty"])
    counts: object = {
        "short": [5, 100, 40], "long": [w * h, w * h], "negative": [-7, w * h + 7],
        "huge": [2**40, 1], "float": [0.5, w * h - 0.5], "null": [None, w * h],
        "garbage": "\u0001\u00ff~~~~", "empty": [],
    }.get(how, [w * h])
    size = {"size": [h, -w], "size_string": ["h", "w"]}.get(how, [h, w])
    ann["segmentation"] = {"size": size, "counts": counts}
    ann["iscrowd"] = rng.choice([0, 1])
    return f"rle {how}"


def m_ids(doc: dict, rng: random.Random) -> str:
    """Duplicate ids, string ids, category id 0, dangling references."""
    how = rng.choice(["dup_image", "dup_ann", "dup_cat", "string_ids", "cat0", "dangling"])
    if how.startswith("dup_"):
        kind = {"dup_image": "images", "dup_ann": "annotations", "dup_cat": "categories"}[how]
        if doc.get(kind):
            doc[kind].append(copy.deepcopy(rng.choice(doc[kind])))
    elif how == "string_ids":
        for kind in RECORDS:
            for rec in doc.get(kind, []):
                rec["id"] = str(rec.get("id"))
        for ann in doc.get("annotations", []):
            for key in ("image_id", "category_id"):
                ann[key] = str(ann.get(key))
    elif how == "cat0":
        old = doc["categories"][0]["id"]
        doc["categories"][0]["id"] = 0
        for ann in doc.get("annotations", []):
            ann["category_id"] = 0 if ann.get("category_id") == old else ann.get("category_id")
    elif doc.get("annotations"):
        rng.choice(doc["annotations"])[rng.choice(["image_id", "category_id"])] = 987654321
    return how


HOSTILE_NAMES = [
    "images\\x.jpg", "..", ".", "../../etc/passwd", "/etc/passwd", "q" * 300 + ".jpg",
    "a\u0000b.jpg", "", "sub/dir/", "CON", "é/ü.jpg", "a" * 5000, "x.JPG ", "\ud800.jpg",
]


def m_images(doc: dict, rng: random.Random) -> str:
    """Images without sizes, huge or negative sizes, hostile file names, two of one stem."""
    picked = _record(doc, rng, "images")
    if picked is None:
        return "empty"
    im = picked[1]
    how = rng.choice(["no_size", "huge", "negative", "name", "same_stem"])
    if how == "no_size":
        im.pop("width", None), im.pop("height", None)
    elif how == "huge":
        im.update(width=rng.choice([70000, 2**31, 2**33]), height=rng.choice([70000, 2**31]))
    elif how == "negative":
        im["height"] = -480
    elif how == "name":
        im["file_name"] = rng.choice(HOSTILE_NAMES)
    else:
        twin = dict(im, id=max(i["id"] for i in doc["images"] if isinstance(i.get("id"), int)) + 1)
        twin["file_name"] = "sub/" + str(im.get("file_name"))
        doc["images"].append(twin)
    return f"image {how}"


def m_no_masks(doc: dict, rng: random.Random) -> str:
    """Detection exports: segmentation empty, null or missing; area and iscrowd left out."""
    how = rng.choice(["[]", "null", "missing", "bbox_empty"])
    for ann in doc.get("annotations", []):
        if how == "bbox_empty":
            ann["bbox"] = []
        elif how == "missing":
            for key in ("segmentation", "area", "iscrowd"):
                ann.pop(key, None)
        else:
            ann["segmentation"] = [] if how == "[]" else None
    return f"boxes only {how}"


def m_top(doc: dict, rng: random.Random) -> str:
    """The top level: a section missing, null or of the wrong type; a panoptic file."""
    how = rng.choice(["drop", "null", "retype", "panoptic", "extra"])
    key = rng.choice(RECORDS)
    if how == "drop":
        doc.pop(key, None)
    elif how == "null":
        doc[key] = None
    elif how == "retype":
        doc[key] = rng.choice([{}, "images", 7, [[]], [None, 1]])
    elif how == "panoptic":
        doc["annotations"] = [{"image_id": im.get("id"), "file_name": "x.png",
                               "segments_info": [{"id": 1, "category_id": 1}]}
                              for im in doc.get("images", [])]
    else:
        doc["extra"] = {"nested": list(range(100))}
    return f"top {how} {key}"


MUTATIONS: list[Callable[[dict, random.Random], str]] = [
    m_field, m_field, m_field, m_polygon, m_rle, m_ids, m_images, m_no_masks, m_top,
]


# --- whole files that are not COCO ------------------------------------------------------------


def raw_cases(base: bytes, rng: random.Random) -> Iterator[Case]:
    """Bytes-level damage to a valid file."""
    cut = rng.randrange(1, max(2, len(base)))
    yield Case(f"truncated at {cut}", base[:cut])
    at = rng.randrange(len(base))
    yield Case(f"byte 0xff at {at}", base[:at] + b"\xff" + base[at:])
    name = b'"file_name": "'
    yield Case("invalid utf-8 in a name", base.replace(name, name + b"\xfe\xfe", 1))
    yield Case("bom", b"\xef\xbb\xbf" + base)
    yield Case("utf-16", base.decode().encode("utf-16"))
    for depth in (1000, 100000):
        nested = b'"deep": ' + b"[" * depth + b"]" * depth + b", "
        yield Case(f"nested {depth}", base.replace(b"{", b"{" + nested, 1))
    yield Case("top-level list (results file)", json.dumps(
        [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}]).encode())
    for text in (b"", b"null", b"[]", b"{}", b"0", b'"coco"', b"{" * 3, b"\x00" * 64):
        yield Case(f"file {text[:8]!r}", text)
    yield Case("duplicate keys", base.replace(b"{", b'{"images": 5, ', 1))


def _dump(doc: object) -> bytes:
    # NaN and Infinity are written as such (not JSON, but what Python's json module writes), and
    # a lone surrogate in a name becomes bytes that are not UTF-8: inputs worth trying.
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _mutate(doc: dict, rng: random.Random) -> str:
    mutation = rng.choice(MUTATIONS)
    try:
        return mutation(doc, rng)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        # an earlier step retyped what this one walks (a section made a string, a record None)
        return f"{mutation.__name__} n/a"


def cases(n: int, seed: int = 0, sample_annotations: Path | None = None) -> list[Case]:
    """``n`` bad COCO files, the same for the same seed: each known-hostile whole file once, then
    documents with one to three mutations each."""
    rng = random.Random(seed)
    bases = base_documents(sample_annotations)
    small = [subset(d, 4, rng) if len(d["images"]) > 4 else d for d in bases]
    out = list(raw_cases(_dump(small[0]), rng))
    while len(out) < n:
        doc = copy.deepcopy(rng.choice(small))
        if len(doc["images"]) > 1 and rng.random() < 0.5:
            doc = subset(doc, rng.randint(1, len(doc["images"])), rng)
        steps = [_mutate(doc, rng) for _ in range(rng.choice([1, 1, 2, 3]))]
        out.append(Case(f"{len(out)}: " + "; ".join(steps), _dump(doc)))
    return out[:n]


# --- running them through the command line ----------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """How one command ended on one input."""

    case: str
    command: str
    verdict: str  # clean | error | bad-message | crash | hang
    detail: str
    peak_rss_mb: float


def limit_memory(mem_bytes: int) -> Callable[[], None]:
    """A preexec_fn capping the child's address space (``ulimit -v``)."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))


def verdict(rc: int | None, stderr: str) -> tuple[str, str]:
    """Judge an exit: 0 without a traceback is clean, 2 with exactly one ``error:`` line is an
    error; a timeout (rc None) is a hang; anything else is a crash."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    last = lines[-1][:120] if lines else ""
    if rc is None:
        return "hang", "no exit before the timeout"
    if rc == 0 and "Traceback" not in stderr:
        return "clean", ""
    if rc == 2:
        one = len(lines) == 1 and lines[0].startswith("error: ")
        return ("error", last) if one else ("bad-message", f"{len(lines)} lines: {last}")
    return "crash", f"rc={rc} {last}"


def run_one(path: Path, command: str, out_dir: Path, timeout: float, mem_bytes: int,
            env: dict | None = None) -> tuple[str, str, float]:
    """``python -m explorer stats --json`` or ``export-masks`` on one file: (verdict, detail,
    peak RSS in MB), the child's own peak read with wait4."""
    args = ["--json"] if command == "stats" else ["--out", str(out_dir), "--quiet"]
    p = subprocess.Popen(
        [sys.executable, "-m", "explorer", command, "--coco", str(path), *args],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        preexec_fn=limit_memory(mem_bytes),
    )
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    stderr = p.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(p.pid, 0)
    timed_out = not timer.is_alive()
    timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    judged = verdict(None if timed_out else p.returncode, stderr)
    return judged[0], judged[1], usage.ru_maxrss / 1024


def campaign(all_cases: list[Case], workdir: Path, jobs: int, timeout: float,
             mem_bytes: int) -> list[Outcome]:
    """Every case through ``stats --json`` and ``export-masks``, ``jobs`` at a time."""

    def one(i_case: tuple[int, Case], command: str) -> Outcome:
        i, case = i_case
        path = workdir / f"case{i}.json"
        path.write_bytes(case.data)
        v, detail, rss = run_one(path, command, workdir / f"out{i}", timeout, mem_bytes)
        return Outcome(case.name, command, v, detail, rss)

    work = [(ic, c) for ic in enumerate(all_cases) for c in ("stats", "export-masks")]
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda w: one(*w), work))


def table(outcomes: list[Outcome], seconds: float) -> str:
    """The figures of a campaign, as a Markdown table."""
    n = Counter(o.verdict for o in outcomes)
    peak = max((o.peak_rss_mb for o in outcomes), default=0.0)
    rows = [
        ("inputs tried", len({o.case for o in outcomes})),
        ("runs (stats --json and export-masks)", len(outcomes)),
        ("clean exits (0)", n["clean"]),
        ("exit-2 errors, one line", n["error"]),
        ("exit 2 without exactly one error: line", n["bad-message"]),
        ("crashes (must be 0)", n["crash"]),
        ("hangs (must be 0)", n["hang"]),
        ("peak RSS of one run", f"{peak:.0f} MB"),
        ("wall time", f"{seconds:.0f} s"),
    ]
    return "\n".join(["| | |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--mem-gb", type=float, default=6)
    ap.add_argument("--sample", type=Path, default=None,
                    help="the sample's instances_val2017.json (default: write the sample)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        os.environ.setdefault("EXPLORER_CACHE", str(Path(tmp) / "cache"))
        sample = a.sample or _sample_annotations()
        started = time.perf_counter()
        outcomes = campaign(cases(a.cases, a.seed, sample), Path(tmp), a.jobs, a.timeout,
                            int(a.mem_gb * 2**30))
        seconds = time.perf_counter() - started
    print(f"{platform.node()} · {os.cpu_count()} CPUs · python {platform.python_version()} · "
          f"{time.strftime('%Y-%m-%d')} · seed {a.seed} · {a.jobs} jobs · timeout "
          f"{a.timeout:.0f} s · ulimit -v {a.mem_gb:g} GB\n")
    print(table(outcomes, seconds))
    bad: dict[tuple[str, str, str], list[str]] = {}
    for o in outcomes:
        if o.verdict in ("crash", "hang", "bad-message"):
            bad.setdefault((o.verdict, o.command, o.detail[:90]), []).append(o.case)
    if bad:
        print("\n| verdict | command | how | runs | e.g. input |\n|---|---|---|---:|---|")
    for (v, command, detail), names in sorted(bad.items()):
        print(f"| {v} | {command} | {detail} | {len(names)} | {names[0][:70]} |")
    return 1 if bad else 0


def _sample_annotations() -> Path:
    sys.path.insert(0, str(ROOT))
    from explorer.coco.sample import write_sample

    return write_sample() / "annotations" / "instances_val2017.json"


if __name__ == "__main__":
    sys.exit(main())
