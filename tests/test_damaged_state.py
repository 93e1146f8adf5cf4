"""Damaged state on disk never takes a command or a page down: a run folder, the prediction
cache, the map cache, the index cache and checkpoints that are damaged (or forged) are left out,
shown as damaged, set aside and rebuilt, or refused in one line; a weights path that is a pipe
is refused at once instead of hanging.

Each test damages what a real run of the library wrote (the embedded sample, models saved by
the test) the way the probe of issue 22 did, then runs what a user runs next.
"""

from __future__ import annotations

import json
import os
import sqlite3

import numpy as np
import pytest

from bench.faults import CHECKPOINT_DAMAGE
from explorer.errors import ExplorerError, WeightsError
from explorer.training import runs
from tests.helpers import coco_subset, run_cli

# ----------------------------------------------------------------------------- run folders

# (file, text) of one damaged run folder each, as the probe wrote them
DAMAGED_RUNS = {
    "config-a-list": {"config.json": "[1, 2]"},
    "config-nested": {"config.json": "[" * 100_000 + "]" * 100_000},
    "config-a-folder": {"config.json/": ""},
    "status-a-list": {"status.json": "[1]"},
    "status-string-epoch": {"status.json": json.dumps({"status": "running", "epoch": "3"})},
    "status-1e400": {"status.json": '{"status": "finished", "seconds": 1e400, "epoch": 1e400}'},
    "status-string-best": {"status.json": json.dumps({"status": "finished", "best": "0.9"})},
    "status-nested": {"status.json": '{"status": ' + "[" * 100_000 + "]" * 100_000 + "}"},
    "metrics-no-step": {"metrics.jsonl": '{"kind": "epoch", "epoch": 1}\n'},
    "metrics-huge-epoch": {"metrics.jsonl": '{"kind": "step", "epoch": 1e400, "step": 1}\n'},
    "metrics-a-list": {"metrics.jsonl": "[1]\n"},
    "metrics-string-loss": {
        "metrics.jsonl": '{"kind": "step", "epoch": 0.5, "step": 1, "train_loss": "x"}\n'
    },
}
GOOD_CONFIG = {"settings": {"task": "classify", "model": "alexnet-classic", "epochs": 2}}
GOOD_STATUS = {"status": "running", "epoch": 1, "started": 1.0, "best": 0.5, "metric": "val_acc"}
GOOD_STEP = {"kind": "step", "epoch": 0.5, "step": 1, "train_loss": 2.0, "time": 2.0}


def damaged_runs(root):
    """One run folder per damage in :data:`DAMAGED_RUNS`, the other files whole; and a whole
    run with one damaged metrics line among good ones."""
    for name, files in DAMAGED_RUNS.items():
        run = root / name
        run.mkdir(parents=True)
        (run / "best.pt").write_bytes(b"")
        whole = {
            "config.json": json.dumps(GOOD_CONFIG),
            "status.json": json.dumps(GOOD_STATUS),
            "metrics.jsonl": json.dumps(GOOD_STEP) + "\n",
        }
        for file, text in {**whole, **files}.items():
            if file.endswith("/"):
                (run / file).mkdir()  # a folder in the file's place
            elif file + "/" not in files:
                (run / file).write_text(text)
    good = root / "whole-run"
    good.mkdir()
    (good / "config.json").write_text(json.dumps(GOOD_CONFIG))
    (good / "status.json").write_text(json.dumps({**GOOD_STATUS, "status": "finished"}))
    lines = [GOOD_STEP, {"kind": "step", "step": "2"}, {**GOOD_STEP, "step": 3}]
    (good / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + "{torn")
    return root


def test_damaged_run_folders_are_listed_as_such_never_raised(tmp_path):
    root = damaged_runs(tmp_path)
    infos = {r.path.name: r for r in runs.list_runs(root)}
    assert set(infos) == {*DAMAGED_RUNS, "whole-run"}
    for name in ("config-a-list", "config-nested", "config-a-folder"):
        assert infos[name].status == runs.DAMAGED and infos[name].message.startswith("config.json")
    assert "not a JSON object but a list" in infos["config-a-list"].message
    assert "nested too deeply" in infos["config-nested"].message
    # a field of the wrong type reads as absent, and the message names it
    assert infos["status-string-epoch"].epoch == 1  # from the last metrics line
    assert "epoch" in infos["status-string-epoch"].message
    assert infos["status-1e400"].seconds == 0 and infos["status-1e400"].epoch == 0
    assert infos["status-string-best"].best is None
    assert infos["status-a-list"].status == "unknown"
    # the damaged runs are not offered as models; the others are
    offered = {r.path.name for r in runs.trained_checkpoints("classify", root)}
    assert not offered & {"config-a-list", "config-nested", "config-a-folder"}
    # a bad metrics line is skipped and counted; the curves of every run can be drawn
    read = runs.read_metrics_file(root / "whole-run")
    assert [r["step"] for r in read.records] == [1, 3] and read.skipped == 2
    assert runs.run_curves(root / "whole-run").attrs["skipped_lines"] == 2
    for name in DAMAGED_RUNS:
        runs.run_curves(root / name)


def test_resuming_a_run_with_a_nested_config_is_refused_in_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ExplorerError, match=f"^{run}: not a run folder"):
        runs.read_config(run)  # what --resume RUN_DIR and the Resume button read


def test_train_and_model_pages_open_beside_damaged_runs(monkeypatch, tmp_path, sample_root):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from tests.helpers import ROOT

    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.delenv("EXPLORER_COCO", raising=False)
    monkeypatch.setattr(runs, "runs_root", lambda: tmp_path)
    damaged_runs(tmp_path)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.run()
    for page in ("train", "classify", "segment", "anatomy"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("pages/train.py").run()
    table = at.dataframe[0].value
    assert set(table.loc[table["status"] == runs.DAMAGED, "run"]) == {
        "config-a-list",
        "config-nested",
        "config-a-folder",
    }


# ----------------------------------------------------------------------------- weights


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real (untrained, seeded) alexnet-classic checkpoint of 3 classes, as a run saves it."""
    import torch

    from explorer.models.registry import create_model
    from explorer.models.weights import CHECKPOINT_FORMAT

    torch.manual_seed(0)
    return {
        "format": CHECKPOINT_FORMAT,
        "model": "alexnet-classic",
        "encoder": None,
        "task": "classify",
        "label_space": "dataset",
        "class_names": ["circle", "crescent", "square"],
        "category_ids": [1, 2, 3],
        "preprocess": {"resize": 64, "crop": 64},
        "state_dict": create_model("alexnet-classic", num_classes=3).state_dict(),
        "epoch": 1,
        "step": 1,
        "best": 0.5,
        "best_epoch": 1,
    }


# the bench's damages that a checkpoint's fields can carry (the pickle is a test of its own)
DAMAGED_CHECKPOINTS = {k: f for k, f in CHECKPOINT_DAMAGE.items() if f is not None}


@pytest.mark.parametrize("damage", DAMAGED_CHECKPOINTS)
def test_a_damaged_checkpoint_is_one_weights_error(checkpoint, tmp_path, damage):
    import torch

    from explorer.models import load_model

    whole = tmp_path / "whole.pt"
    torch.save(checkpoint, whole)
    assert load_model(str(whole)).class_names == checkpoint["class_names"]
    damaged = {**checkpoint}
    DAMAGED_CHECKPOINTS[damage](damaged)
    path = tmp_path / "damaged.pt"
    torch.save(damaged, path)
    with pytest.raises(WeightsError, match=f"^{path}: a damaged checkpoint: ") as e:
        load_model(str(path))
    assert "\n" not in str(e.value)


def test_a_damaged_checkpoint_given_to_the_cli_is_one_line(checkpoint, tmp_path, sample_root):
    import torch

    path = tmp_path / "best.pt"
    torch.save({**checkpoint, "class_names": "circle"}, path)
    ann = coco_subset(
        sample_root / "annotations" / "instances_val2017.json", tmp_path / "val2.json", 2
    )
    r = run_cli(
        *("predict", "--coco", str(ann), "--images", str(sample_root / "val2017")),
        *("--model", str(path), "--device", "cpu", "--workers", "0", "--quiet"),
        *("--out", str(tmp_path / "p.csv")),
    )
    assert r.returncode == 2 and r.stderr == (
        f"error: {path}: a damaged checkpoint: class_names is not a list of names\n"
    ), r.stderr


def test_a_code_running_pickle_is_refused_without_advice_to_run_it(tmp_path):
    import torch

    from explorer.models import WeightsFile, load_model

    class RunsACommand:
        def __reduce__(self):
            return (os.system, ("echo ran",))

    torch.save({"w": RunsACommand()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError) as e:
        load_model("alexnet", WeightsFile(tmp_path / "evil.pth"))
    assert str(e.value) == (
        f"{tmp_path / 'evil.pth'}: not a plain weights file: it holds Python objects that are "
        "not tensors (refused: loading it could run code)"
    )


def test_a_weights_path_that_is_a_pipe_is_refused_not_waited_on(tmp_path, sample_root):
    from explorer.models import WeightsFile, load_model

    fifo = tmp_path / "weights.pth"
    os.mkfifo(fifo)
    ann = sample_root / "annotations" / "instances_val2017.json"
    # a hang shows as TimeoutExpired (it was forever); the limit is no measure of speed
    r = run_cli(
        *("evaluate", "--coco", str(ann), "--images", str(sample_root / "val2017")),
        *("--model", "alexnet", "--weights", str(fifo), "--device", "cpu"),
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr == (
        f"error: {fifo}: not a regular file (a pipe, device or socket)\n"
    ), r.stderr
    with pytest.raises(WeightsError, match=f"^{fifo}: not a regular file"):
        load_model("alexnet", WeightsFile(fifo))  # the library, as a page's thread calls it


# ----------------------------------------------------------------------------- index cache


def _shorten(column):
    # a new file in its place: the open index maps the old one (truncating it would kill us)
    np.save(column.with_suffix(".new.npy"), np.load(column)[:5])
    column.with_suffix(".new.npy").replace(column)


INDEX_DAMAGE = {
    "meta.json a list": lambda d: (d / "meta.json").write_text("[1]"),
    "meta.json nested": lambda d: (d / "meta.json").write_text("[" * 100_000 + "]" * 100_000),
    "a zero-byte column": lambda d: (
        (d / "instances_area.npy").unlink(),
        (d / "instances_area.npy").touch(),
    ),
    "a column of 5 rows": lambda d: _shorten(d / "instances_id.npy"),
    "categories a string": lambda d: (d / "meta.json").write_text(
        json.dumps({**json.loads((d / "meta.json").read_text()), "categories": "x"})
    ),
    "a folder as meta.json": lambda d: ((d / "meta.json").unlink(), (d / "meta.json").mkdir()),
}


@pytest.mark.parametrize("damage", INDEX_DAMAGE)
def test_a_damaged_index_cache_is_built_again(tmp_path, monkeypatch, damage):
    from explorer.coco import open_index
    from tests.helpers import pycoco, tiny

    ann, _ = tiny("val2017")
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))
    whole = open_index(ann)
    (folder,) = (tmp_path / "index").iterdir()
    INDEX_DAMAGE[damage](folder)
    again = open_index(ann)
    assert not again.from_cache  # built again, not read
    assert again.num_annotations == whole.num_annotations == len(pycoco(ann).anns)
    assert list(again.annotations["id"]) == list(whole.annotations["id"])
    assert again.categories == whole.categories
    r = run_cli("stats", "--coco", str(ann), "--json", env={**os.environ})
    assert r.returncode == 0 and json.loads(r.stdout)["annotations"] == whole.num_annotations


# ----------------------------------------------------------------------------- prediction cache


def _sql(db, statement, *args):
    import contextlib

    with contextlib.closing(sqlite3.connect(db)) as c, c:
        c.execute(statement, *args)


def _nan_last(db):
    import contextlib

    with contextlib.closing(sqlite3.connect(db)) as c, c:
        for k, v in c.execute("SELECT k, v FROM p").fetchall():
            a = np.frombuffer(v, np.float32).copy()
            a[len(a) // 2] = np.nan  # the best label's probability
            c.execute("UPDATE p SET v = ? WHERE k = ?", (a.tobytes(), k))


def _replace(db, make):
    db.unlink()
    make(db)


STORE_DAMAGE = {
    "truncated": lambda db: db.write_bytes(db.read_bytes()[: db.stat().st_size // 2]),
    "random bytes": lambda db: db.write_bytes(np.random.default_rng(0).bytes(20_000)),
    "a folder": lambda db: _replace(db, lambda p: p.mkdir()),
    "a table of another shape": lambda db: _replace(
        db, lambda p: _sql(p, "CREATE TABLE p (a INTEGER, b INTEGER, c INTEGER)")
    ),
}
RECORD_DAMAGE = {
    "3-byte records": lambda db: _sql(db, "UPDATE p SET v = x'010203'"),
    "text records": lambda db: _sql(db, "UPDATE p SET v = 'hello'"),
    "NULL records": lambda db: _sql(db, "UPDATE p SET v = NULL"),
    "NaN vectors": _nan_last,
}


@pytest.mark.parametrize("damage", [*STORE_DAMAGE, *RECORD_DAMAGE])
def test_a_damaged_prediction_cache_is_set_aside_or_recomputed(
    tmp_path, monkeypatch, sample_root, alexnet_file, damage
):
    from explorer.coco import open_index
    from explorer.coco.dataset import Dataset
    from explorer.inference import classification
    from explorer.inference import runner as infer_runner
    from explorer.inference.options import RunOptions
    from explorer.models import WeightsFile, load_model

    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path / "cache"))
    ann = sample_root / "annotations" / "instances_val2017.json"
    dataset = Dataset(
        open_index(coco_subset(ann, tmp_path / "val3.json", 3)), sample_root / "val2017"
    )
    model = load_model("alexnet", WeightsFile(alexnet_file))

    def table():
        return classification.classification_table(
            model, dataset, crops=True, options=RunOptions(workers=0)
        )

    want = table()
    (db,) = (tmp_path / "cache" / "predictions").iterdir()
    {**STORE_DAMAGE, **RECORD_DAMAGE}[damage](db)
    assert table().equals(want)  # what was lost is computed again
    aside = sorted(p.name for p in db.parent.iterdir() if ".damaged-" in p.name)
    assert aside == ([f"{db.name}.damaged-1"] if damage in STORE_DAMAGE else [])
    monkeypatch.setattr(infer_runner, "run", lambda *a, **k: pytest.fail("the model ran again"))
    assert table().equals(want)  # and stored again: the model does not run a third time


def test_damaged_label_map_records_are_refused(sample_root):
    from explorer.inference.outputs import DamagedRecord, LabelMaps

    codec = LabelMaps()
    labels = np.zeros((12, 16), np.uint8)
    labels[2:5, 3:9] = 2
    blob = codec.encode((labels, {0: 0.9, 2: 0.7}))
    got, scores = codec.decode(blob, 3)
    assert (got == labels).all() and scores == {0: 0.9, 2: 0.7}
    for bad in (blob[:3], blob[:60], b"\xff" * 40, blob[:4] + b"[" * 5000 + blob[4:]):
        with pytest.raises(DamagedRecord):
            codec.decode(bad, 3)
    with pytest.raises(DamagedRecord):  # labels the model does not have
        codec.decode(blob, 2)


# ----------------------------------------------------------------------------- map cache


def _npz(path, **cols):
    import io

    buf = io.BytesIO()
    np.savez(buf, **cols)
    path.write_bytes(buf.getvalue())


def _rewrite(path, **changes):
    with np.load(path) as z:
        cols = {k: z[k] for k in z.files}
    path.unlink()
    _npz(path, **{**cols, **changes})


def _forged_gib(path):
    """The stored map with an x column whose header declares 1 GiB of float32 (the file stays
    small): reading it as declared would allocate the GiB before finding the data short."""
    _rewrite(path)
    data = path.read_bytes()
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, np.float32))
    small, big = dict(header, shape=(3,)), dict(header, shape=(1 << 28,))
    for h in (small, big):
        h["shape"] = tuple(h["shape"])
    import io

    def head(h):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, h)
        return buf.getvalue()

    assert len(head(small)) == len(head(big))
    path.write_bytes(data.replace(head(dict(header, shape=(len(_x(path)),))), head(big), 1))


def _x(path):
    with np.load(path) as z:
        return z["x"]


MAP_DAMAGE = {
    "zero bytes": lambda p: p.write_bytes(b""),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "a folder": lambda p: (p.unlink(), p.mkdir()),
    "unequal columns": lambda p: _rewrite(p, x=_x(p)[:-1]),
    "string ids": lambda p: _rewrite(p, annotation_id=np.array(["a"] * len(_x(p)))),
    "a header declaring 1 GiB": _forged_gib,
}


@pytest.fixture(scope="module")
def small_map_input(sample_root, tmp_path_factory, alexnet_file):
    from explorer.coco import open_index
    from explorer.coco.dataset import Dataset
    from explorer.models import WeightsFile, load_model

    d = tmp_path_factory.mktemp("map")
    ann = coco_subset(sample_root / "annotations" / "instances_val2017.json", d / "v.json", 3)
    return load_model("alexnet", WeightsFile(alexnet_file)), Dataset(
        open_index(ann), sample_root / "val2017"
    )


@pytest.mark.parametrize("damage", MAP_DAMAGE)
def test_a_damaged_map_cache_is_built_again(tmp_path, monkeypatch, small_map_input, damage):
    import tracemalloc

    from explorer.inference import embeddings
    from explorer.inference.options import RunOptions

    model, dataset = small_map_input
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))
    first = embeddings.embed(model, dataset, method="pca", options=RunOptions(workers=0))
    (path,) = (tmp_path / "maps").iterdir()
    MAP_DAMAGE[damage](path)
    tracemalloc.start()
    try:
        again = embeddings.embed(model, dataset, method="pca", options=RunOptions(workers=0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 << 20  # not the GiB a forged header declares (the model's run is less)
    assert not again.from_cache and len(again) == len(first) > 0
    assert (again.annotation_id == first.annotation_id).all() and np.allclose(again.x, first.x)
    assert (tmp_path / "maps" / f"{path.name}.damaged-1").exists()
    assert embeddings.embed(model, dataset, method="pca").from_cache
