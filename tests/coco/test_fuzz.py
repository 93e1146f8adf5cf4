"""Fuzz: a few hundred bad COCO files (``bench/fuzz.py``'s generator, seeded) crash nothing.

In process, ``open_index`` + ``stats.summary`` either work or raise an ``ExplorerError``; through
the command line, a sample of them ends ``stats --json`` and ``export-masks`` with exit 0, or
exit 2 and one ``error:`` line: no traceback, signal, hang or memory blow-up. The longer campaign
is ``python -m bench.fuzz`` (figures in docs/RELIABILITY.md).
"""

from __future__ import annotations

import random
import resource
import signal
import traceback

import pytest

from bench.fuzz import Case, campaign, cases
from explorer.coco import open_index, stats
from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError

SEED = 20251130
IN_PROCESS = 300
THROUGH_CLI = 16
SECONDS_PER_CASE = 20
MEMORY = 3 * 2**30  # no case needs more than a few MB; a blow-up stops here, not in swap


@pytest.fixture(scope="module")
def fuzz_cases(sample_root) -> list[Case]:
    return cases(IN_PROCESS, SEED, sample_root / "annotations" / "instances_val2017.json")


@pytest.fixture
def bounded_memory():
    """Caps this process's address space for the test (a case that asks for gigabytes gets a
    MemoryError instead of taking the machine); restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        now = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (now + MEMORY, hard))
    yield
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _alarm(signum, frame):
    raise TimeoutError(f"no answer within {SECONDS_PER_CASE} s")


def _where(e: BaseException) -> str:
    """The innermost frame of ours, as 'file:line'."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/explorer/" in f.filename]
    f = (frames or traceback.extract_tb(e.__traceback__) or [None])[-1]
    return f"{f.filename.split('/explorer/')[-1]}:{f.lineno}" if f else "?"


def _open_and_count(path) -> None:
    index = open_index(path)
    stats.summary(Dataset(index))


def test_bad_coco_files_open_or_raise_explorer_errors(fuzz_cases, tmp_path, bounded_memory):
    failures, errors = {}, 0
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for i, case in enumerate(fuzz_cases):
            path = tmp_path / f"case{i}.json"
            path.write_bytes(case.data)
            signal.alarm(SECONDS_PER_CASE)
            try:
                _open_and_count(path)
            except ExplorerError as e:
                errors += 1
                assert "\n" not in str(e), f"{case.name}: a message of several lines: {e}"
            except (Exception, RecursionError) as e:  # everything else is a bug: keep its class
                key = f"{type(e).__name__} at {_where(e)}"
                failures.setdefault(key, f"{case.name[:70]}: {str(e)[:100]}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    report = "\n".join(f"{k} (e.g. {v})" for k, v in sorted(failures.items()))
    assert not failures, f"{len(failures)} kinds of crash:\n{report}"
    assert 0 < errors < len(fuzz_cases)  # the generator makes both readable and refused files


def test_bad_coco_files_through_the_command_line(fuzz_cases, tmp_path):
    # The whole-file cases first (not COCO at all), then a seeded sample of the mutated ones.
    raw = [c for c in fuzz_cases if not c.name[0].isdigit()]
    mutated = [c for c in fuzz_cases if c.name[0].isdigit()]
    rng = random.Random(SEED)
    chosen = rng.sample(raw, 4) + rng.sample(mutated, THROUGH_CLI - 4)
    outcomes = campaign(chosen, tmp_path, jobs=2, timeout=60, mem_bytes=MEMORY)
    bad = [
        f"{o.command} on {o.case[:60]}: {o.verdict} {o.detail}"
        for o in outcomes
        if o.verdict not in ("clean", "error")
    ]
    assert not bad, "\n".join(bad)
    assert len(outcomes) == 2 * THROUGH_CLI


def test_the_generator_is_seeded_and_covers_every_kind_of_damage(fuzz_cases, sample_root):
    again = cases(IN_PROCESS, SEED, sample_root / "annotations" / "instances_val2017.json")
    assert [c.data for c in again] == [c.data for c in fuzz_cases]
    names = " ".join(c.name for c in fuzz_cases)
    for kind in (
        "truncated",
        "bom",
        "nested",
        "top-level list",
        "polygon",
        "rle",
        "string_ids",
        "cat0",
        "image no_size",
        "boxes only",
        "dropped",
        "top panoptic",
    ):
        assert kind in names, kind


MALFORMED_RLES = {
    "short": [5, 100, 40],  # sums to less than h×w: decoding it handed out uninitialised memory
    "long": [64 * 48, 64 * 48],
    "negative": [-7, 64 * 48 + 7],
    "huge": [2**40, 1],
    "fractional": [0.5, 64 * 48 - 0.5],
    "garbage": "\u0001\u00ff~~~~",
    "wrong size": None,
}


@pytest.mark.parametrize("how", sorted(MALFORMED_RLES))
def test_no_mask_is_ever_built_from_a_malformed_rle(how, tmp_path):
    from explorer.coco import masks
    from tests.helpers import write_coco

    counts = MALFORMED_RLES[how]
    rle = (
        {"size": [48, 64], "counts": counts}
        if counts is not None
        else {"size": [480, 640], "counts": [480 * 640]}
    )
    image = {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}
    ann = {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "iscrowd": 1,
        "area": 10.0,
        "bbox": [0, 0, 5, 5],
        "segmentation": rle,
    }
    try:
        index = open_index(write_coco(tmp_path / "rle.json", [image], [ann]))
    except ExplorerError:
        return  # refused as a file: nothing decoded
    for row in range(index.num_annotations):  # skipped at parse (and listed), or refused here
        with pytest.raises(ExplorerError):
            masks.annotation_mask(index, row)
