"""Review decisions: never lost by two writers at once, never applied to another version of the
annotation file, and a damaged sidecar is one line or nothing, never a traceback. They live in
the user's work folder, not the disposable cache."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from explorer import paths
from explorer.errors import ExplorerError
from explorer.inference import reviews
from tests.helpers import tiny

PER_WRITER = 150


def _copy(folder: Path, name: str = "instances_val2017.json") -> Path:
    ann, _ = tiny("val2017")
    out = folder / name
    shutil.copy(ann, out)
    return out


def _writer(ann: str, first: int, start) -> None:
    start.wait()  # both writers go at once
    for i in range(first, first + PER_WRITER):
        reviews.decide(ann, f"wrong_label:{i}", "confirmed")


def test_two_processes_deciding_at_once_keep_every_decision(tmp_path):
    """The probe: two app servers on one work folder lost 25-130 of 300 decisions."""
    ann = _copy(tmp_path)
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_writer, args=(str(ann), first, start)) for first in (0, PER_WRITER)
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=300)
    assert [w.exitcode for w in writers] == [0, 0]
    decisions = reviews.load(ann)
    assert len(decisions) == 2 * PER_WRITER
    assert set(decisions) == {f"wrong_label:{i}" for i in range(2 * PER_WRITER)}


def test_a_replaced_file_does_not_inherit_the_decisions(tmp_path):
    ann = _copy(tmp_path)
    reviews.decide(ann, "wrong_label:1", "confirmed")
    reviews.decide(ann, "wrong_label:2", "reviewed")
    assert reviews.read(ann) == reviews.Reviews(
        {"wrong_label:1": "confirmed", "wrong_label:2": "reviewed"}
    )
    # a re-export at the same path: another file under the same name
    data = json.loads(ann.read_text())
    data["annotations"] = data["annotations"][::-1]
    replacement = tmp_path / "new.json"
    replacement.write_text(json.dumps(data))
    os.replace(replacement, ann)
    found = reviews.read(ann)
    assert found.decisions == {}
    assert "2 decisions were made on another version" in found.note
    reviews.decide(ann, "wrong_label:3", "confirmed")  # decisions on the new version are its own
    assert reviews.load(ann) == {"wrong_label:3": "confirmed"}
    assert "2 decisions" in reviews.read(ann).note  # the old ones are kept, still not applied


def test_a_sidecar_of_another_file_copied_over_is_not_applied(tmp_path):
    ann, other = _copy(tmp_path), _copy(tmp_path, "other.json")
    reviews.decide(other, "wrong_label:5", "confirmed")
    shutil.copy(reviews.reviews_path(other), reviews.reviews_path(ann))
    found = reviews.read(ann)
    assert found.decisions == {} and "another file" in found.note and "other.json" in found.note
    assert reviews.decide(ann, "wrong_label:6", "reviewed") == {"wrong_label:6": "reviewed"}
    assert reviews.read(ann) == reviews.Reviews({"wrong_label:6": "reviewed"})


def test_toggle_forgets_a_decision_pressed_again(tmp_path):
    ann = _copy(tmp_path)
    assert reviews.toggle(ann, "bad_mask:4", "confirmed") == {"bad_mask:4": "confirmed"}
    assert reviews.toggle(ann, "bad_mask:4", "reviewed") == {"bad_mask:4": "reviewed"}
    assert reviews.toggle(ann, "bad_mask:4", "reviewed") == {}


def test_a_damaged_sidecar_is_nothing_or_one_line(tmp_path):
    ann = _copy(tmp_path)
    sidecar = reviews.reviews_path(ann)
    sidecar.write_text("[" * 100_000 + "]" * 100_000)  # nested too deeply for json
    assert reviews.read(ann) == reviews.Reviews()
    sidecar.write_text(json.dumps({"annotations": os.path.realpath(ann), "versions": [1, "x"]}))
    assert reviews.read(ann) == reviews.Reviews()
    assert reviews.decide(ann, "wrong_label:1", "confirmed") == {"wrong_label:1": "confirmed"}
    sidecar.unlink()
    sidecar.mkdir()  # a folder in its place
    assert reviews.read(ann) == reviews.Reviews()
    with pytest.raises(ExplorerError, match="cannot be written \\(a folder has that name\\)"):
        reviews.decide(ann, "wrong_label:1", "confirmed")
    lock = sidecar.with_name(sidecar.name + ".lock")
    lock.unlink()
    lock.mkdir()
    with pytest.raises(ExplorerError, match="cannot lock the decisions file"):
        reviews.decide(ann, "wrong_label:1", "confirmed")
    with pytest.raises(ExplorerError, match="missing.json: cannot read"):
        reviews.read(tmp_path / "missing.json")


def test_decisions_and_runs_live_in_the_work_folder_not_the_cache(tmp_path, monkeypatch):
    """Clearing the cache keeps them; an older version's runs and reviews, under the cache,
    are moved over on first use, none lost and none overwritten."""
    from explorer.training import runs

    cache, work = tmp_path / "cache", tmp_path / "work"
    (cache / "runs" / "old-run").mkdir(parents=True)
    (cache / "runs" / "old-run" / "best.pt").write_bytes(b"weights")
    (cache / "runs" / "kept").mkdir()  # a namesake already in the work folder
    (work / "runs" / "kept").mkdir(parents=True)
    (work / "runs" / "kept" / "config.json").write_text("{}")
    ann = _copy(tmp_path)
    monkeypatch.setenv("EXPLORER_CACHE", str(cache))
    monkeypatch.setenv("EXPLORER_WORK", str(work))
    (cache / "reviews").mkdir()
    legacy = {"annotations": os.path.realpath(ann), "decisions": {"wrong_label:9": "confirmed"}}
    # the name an older version gave it (reviews_path itself would move the folder now)
    name = hashlib.sha1(os.path.realpath(ann).encode()).hexdigest()[:16] + ".json"
    (cache / "reviews" / name).write_text(json.dumps(legacy))

    assert runs.runs_root() == work / "runs"
    assert (work / "runs" / "old-run" / "best.pt").read_bytes() == b"weights"
    assert not (cache / "runs" / "old-run").exists()
    assert os.listdir(work / "runs" / "kept") == ["config.json"]  # not overwritten
    assert (cache / "runs" / "kept").is_dir()  # left where it was, not lost
    # the legacy sidecar, written after the file last changed, still applies
    assert reviews.reviews_path(ann).parent == work / "reviews"
    assert reviews.load(ann) == {"wrong_label:9": "confirmed"}

    reviews.decide(ann, "wrong_label:10", "reviewed")
    shutil.rmtree(cache)  # "safe to delete at any time"
    assert reviews.load(ann) == {"wrong_label:9": "confirmed", "wrong_label:10": "reviewed"}
    assert (work / "runs" / "old-run" / "best.pt").is_file()
    assert paths.cache_dir("index").parent == cache  # the cache comes back, empty


def test_a_detectors_row_is_decided_apart_from_the_models_row_on_the_same_object():
    """The same annotation doubted by the two models and by a detector: two rows, two keys (a
    model pair's key is the one it always was, so no decision already made is lost)."""
    models = {"kind": "wrong_label", "annotation_id": 42, "image_id": 7, "category_id": 3,
              "bbox": [1, 2, 3, 4], "evidence": "models"}  # fmt: skip
    detector = {**models, "evidence": "detector dt.json"}
    assert reviews.row_key(models) == "wrong_label:42"
    assert reviews.row_key({k: v for k, v in models.items() if k != "evidence"}) == "wrong_label:42"
    assert reviews.row_key(detector) == "detector dt.json|wrong_label:42"
    region = {**detector, "kind": "missing", "annotation_id": -1}
    assert reviews.row_key(region) == "detector dt.json|missing:7:3:1.0,2.0,3.0,4.0"
    assert reviews.row_key({**region, "evidence": "models"}) == "missing:7:3:1.0,2.0,3.0,4.0"
