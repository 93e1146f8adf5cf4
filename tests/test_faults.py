"""Faults never crash or lose work: a full disk is exit 2 and one line naming the folder, with no
half-written file or lying status; a run killed at any moment resumes with an unbroken history;
temporaries left by killed processes are removed.

The full disk is real wherever it can be: a 3 MB tmpfs (mounting one needs root; those tests are
skipped without it), /dev/full (the kernel's ENOSPC on every write) and SQLite's own
``max_page_count`` limit (SQLITE_FULL), which need no privileges.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid

import pytest
import torch

from explorer import paths
from explorer.errors import StorageError
from explorer.inference import cache
from explorer.training import runs
from tests.helpers import ROOT, coco_subset, run_cli, train_command
from tests.training.test_trainer import cli_train, epoch_lines

CLASSIFY = ("--task", "classify", "--model", "alexnet-classic", "--batch-size", "16")


def fill(disk):
    """Leave no free byte on ``disk``."""
    with open(disk / f"filler-{uuid.uuid4().hex}", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC


def one_error_line(r, folder) -> str:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: {folder}: the disk is full"), lines[0]
    return lines[0]


def temporaries(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------- full disk


def test_sample_on_a_full_disk_is_one_line_and_leaves_nothing(tiny_disk):
    r = run_cli("sample", env={**os.environ, "EXPLORER_CACHE": str(tiny_disk / "c")})
    one_error_line(r, tiny_disk / "c" / "sample")
    left = [p for p in tiny_disk.rglob("*") if p.is_file()]
    assert left == [], left  # the half-written sample folder is gone


def test_predict_on_a_full_disk_is_one_line(tiny_disk, sample_root, alexnet_file):
    env = {**os.environ, "EXPLORER_CACHE": str(tiny_disk / "c")}
    ann = sample_root / "annotations" / "instances_val2017.json"
    args = [
        "predict",
        "--coco",
        str(coco_subset(ann, tiny_disk.parent / "val4.json", 4)),
        "--images",
        str(sample_root / "val2017"),
        "--model",
        "alexnet",
        "--weights",
        str(alexnet_file),
        "--device",
        "cpu",
        "--workers",
        "0",
        "--quiet",
        "--out",
        str(tiny_disk.parent / "p.csv"),
    ]
    first = run_cli(*args, env=env)  # the index cache is built while there is room
    assert first.returncode == 0, first.stderr
    for db in (tiny_disk / "c" / "predictions").iterdir():
        db.unlink()
    fill(tiny_disk)
    one_error_line(run_cli(*args, env=env), tiny_disk / "c" / "predictions")


def test_train_on_a_full_disk_ends_failed_with_the_reason(tiny_data, tiny_disk):
    run = tiny_disk / "run"
    r = cli_train(tiny_data, run, *CLASSIFY, "--epochs", "2")
    one_error_line(r, run)
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "failed" and "the disk is full" in status["message"]
    assert temporaries(tiny_disk) == []


def test_an_end_status_is_written_even_when_no_temporary_fits(tiny_disk):
    run = tiny_disk / "run"
    run.mkdir()
    runs.write_status(run, {"status": "running", "message": ""})
    fill(tiny_disk)
    with pytest.raises(StorageError, match=f"^{run}: the disk is full"):
        runs.write_status(run, {"status": "running", "message": ""})
    runs.write_status(run, {"status": "failed", "message": "the disk is full"})
    assert json.loads((run / "status.json").read_text())["status"] == "failed"
    assert temporaries(tiny_disk) == []


def test_atomic_file_on_a_full_disk(tmp_path, monkeypatch):
    """Every write to /dev/full fails with ENOSPC, as on a full disk; torch.save reports it as a
    RuntimeError, which must still be told as a full disk."""
    target = tmp_path / "best.pt"
    target.write_bytes(b"old")
    monkeypatch.setattr(
        paths, "open", lambda p, mode: builtins.open("/dev/full", mode), raising=False
    )
    with pytest.raises(StorageError, match=f"^{tmp_path}: the disk is full"):
        runs.save_checkpoint({"w": torch.zeros(100_000)}, target)
    with pytest.raises(StorageError, match=f"^{tmp_path}: the disk is full"):
        paths.atomic_write_bytes(target, b"x" * 1_000_000)
    assert target.read_bytes() == b"old" and temporaries(tmp_path) == []


def test_other_errors_keep_their_type(tmp_path):
    with pytest.raises(ZeroDivisionError), paths.atomic_file(tmp_path / "f") as f:
        f.write(b"x")
        1 / 0  # noqa: B018
    assert not (tmp_path / "f").exists() and temporaries(tmp_path) == []


def test_prediction_store_on_a_full_database(tmp_path, monkeypatch):
    """SQLite's own page limit raises the SQLITE_FULL a full disk raises."""
    connect = sqlite3.connect

    def limited(*a, **k):
        db = connect(*a, **k)
        db.execute("PRAGMA max_page_count = 3")
        return db

    store = cache.PredictionStore(tmp_path / "p.sqlite")
    monkeypatch.setattr(cache.sqlite3, "connect", limited)
    with pytest.raises(StorageError, match=f"^{tmp_path}: the disk is full"):
        store.put_many({str(k): os.urandom(2000) for k in range(50)})
    assert store.get_many(["1"]) == {}  # rolled back, still readable


# ----------------------------------------------------------------------------- temporaries


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_are_removed_by_the_next_writer(tmp_path):
    stale = tmp_path / f".best.pt.{dead_pid()}.tmp"
    live = tmp_path / f".best.pt.{os.getppid()}.tmp"  # a living process may still write it
    other = tmp_path / f".last.pt.{dead_pid()}.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"half")
    paths.atomic_write_bytes(tmp_path / "best.pt", b"new")
    assert not stale.exists() and live.exists() and other.exists()
    assert paths.remove_stale_temporaries(tmp_path) == 1 and not other.exists()


def test_two_threads_writing_one_file_never_share_a_temporary(tmp_path):
    """Each writer holds its own temporary until its rename: with a shared name, the second
    writer's open truncated the first one's half-written file (a mixed body, or a rename of a
    name already moved away)."""
    import threading

    target, opened, errors = tmp_path / "reviews.json", threading.Barrier(2), []

    def write(body: bytes) -> None:
        try:
            with paths.atomic_file(target) as f:
                f.write(body[:4])
                opened.wait(timeout=60)  # both temporaries are open at once
                f.write(body[4:])
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            errors.append(e)

    bodies = [b"A" * 100_000, b"B" * 100_000]
    threads = [threading.Thread(target=write, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and target.read_bytes() in bodies
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


# ----------------------------------------------------------------------------- kill and resume


def test_kill_before_the_first_last_pt_resumes_with_one_history(tiny_data, tmp_path):
    """SIGKILL as soon as epoch 1 is logged: while best.pt or last.pt is written, or just after
    (then last.pt is deleted, which is the state a kill a moment earlier leaves)."""
    run = tmp_path / "r"
    args = train_command(tiny_data, run, *CLASSIFY, "--epochs", "2")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not epoch_lines(run):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (run / "last.pt").unlink(missing_ok=True)
    (run / f".best.pt.{proc.pid}.tmp").write_bytes(b"half a checkpoint")
    assert json.loads((run / "status.json").read_text())["status"] == "running"
    r = cli_train(tiny_data, run, *CLASSIFY, "--resume", str(run))
    assert r.returncode == 0, r.stderr
    assert [e["epoch"] for e in epoch_lines(run)] == [1, 2]
    steps = [r["step"] for r in runs.read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(1, epoch_lines(run)[-1]["step"] + 1))
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert temporaries(run) == []
