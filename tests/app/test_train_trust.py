"""Issue 22 on the Train page: a Stop says exactly what it kept and Resume continues it (in a real
browser), old notices go, "Start from published weights" is never a silent no-op, imported
curves are drawn, typed paths obey ``EXPLORER_DATA_ROOTS``, and the page redraws its runs table
and curves only when a job moved on."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.app import training_monitor as tr
from explorer.training import TrainConfig, runs
from explorer.training.events import EpochEnd, Loading, Preparing, Step
from explorer.training.jobs import Job, JobQueue
from tests.app.test_pages import plotly_array
from tests.helpers import ROOT

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    st.cache_data.clear()
    st.cache_resource.clear()
    for name in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_DATA_ROOTS"):
        monkeypatch.delenv(name, raising=False)


def train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# ----------------------------------------------------------------------------- published weights


def test_the_published_weights_box_is_off_for_models_without_them(
    monkeypatch, tmp_path, sample_root
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no weights downloaded here
    at = train_page()
    at.selectbox(key="t_model_classify").set_value("alexnet-classic").run()
    box = at.checkbox(key="t_pretrained")
    assert box.disabled and "no published weights" in box.help
    at.selectbox(key="t_model_classify").set_value("alexnet").run()
    assert not at.checkbox(key="t_pretrained").disabled
    assert not at.warning
    at.checkbox(key="t_pretrained").check().run()
    said = [w.value for w in at.warning]
    assert any("published weights are not on this machine" in w for w in said), said
    # ticked, then a model without published weights: the box is off and so is the setting
    at.selectbox(key="t_model_classify").set_value("alexnet-classic").run()
    assert at.checkbox(key="t_pretrained").disabled and not at.warning


# ----------------------------------------------------------------------------- curves import


def write_tensorboard_run(folder) -> None:
    logs = runs.RunLogs(folder, None)
    for step in (1, 2, 3):
        logs.step(
            {"kind": "step", "epoch": step / 3, "step": step, "train_loss": 1.0 / step,
             "lr": 0.1, "images_per_s": 10.0, "time": 0.0}
        )  # fmt: skip
    logs.close()
    (folder / "metrics.jsonl").unlink()


def test_imported_curves_are_drawn_and_paths_obey_the_data_roots(
    monkeypatch, tmp_path, sample_root
):
    """A TensorBoard log of this project drew nothing (its tags were not among the selected
    metrics), a missing folder read "no event files inside", and "/" imported every log the
    server could read."""
    allowed = tmp_path / "allowed"
    write_tensorboard_run(allowed / "tb")
    write_tensorboard_run(tmp_path / "outside")
    monkeypatch.setenv("EXPLORER_DATA_ROOTS", str(allowed))
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EXPLORER_WORK", str(tmp_path / "work"))  # no runs: the import alone
    at = train_page()

    def import_(path: str) -> list[str]:
        at.text_input(key="t_import_path").set_value(path)
        at.button(key="t_import").click().run()
        assert not at.exception, [e.value for e in at.exception]
        return [e.value for e in at.error]

    for path in ("/", str(tmp_path / "outside"), str(allowed / ".." / "outside")):
        errors = import_(path)
        assert errors and "outside the folders this server may open" in errors[0], errors
    assert "t_curves" not in [c.key for c in at.get("plotly_chart")]
    assert import_(str(allowed / "nowhere")) == [f"{allowed / 'nowhere'}: no such folder"]
    assert import_(str(allowed / "tb")) == []
    assert at.multiselect(key="t_metric").value == [tr.STEP_LOSS]
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    drawn = [t for t in traces if t.get("name") == "tb · train_loss_step"]
    assert drawn and plotly_array(drawn[0]["x"]).tolist() == [1, 2, 3]  # the imported run


# ----------------------------------------------------------------------------- notices, redraws


def test_notices_go_once_dismissed_or_superseded():
    cfg = TrainConfig(task="classify", coco="a.json", images="img", model="alexnet-classic")
    queue = JobQueue()  # its registry filled by hand: no worker runs
    queue._jobs = {
        1: Job(1, cfg, status="stopped", message="stopped by the user", run_dir="/r/one"),
        2: Job(2, cfg, status="failed", message="no such file", run_dir="/r/two"),
        3: Job(3, cfg, resume="/r/one", status="running", run_dir="/r/one"),
        4: Job(4, cfg),
    }
    # #1's "stopped" is stale: #3 resumed its run
    assert [j.id for j in queue.notices()] == [2]
    assert queue.stop(4) and queue.snapshot()[0].message == "removed from the queue"
    assert [j.id for j in queue.notices()] == [2]  # a job that never ran leaves no notice
    queue.dismiss(2)
    assert queue.notices() == []


def job(progress) -> Job:
    return Job(1, None, status="running", run_dir="/r", progress=progress)  # type: ignore[arg-type]


def test_the_board_is_redrawn_when_a_job_moves_on_not_at_every_poll():
    record = {"kind": "epoch", "epoch": 1}
    loading = [Preparing("/r", "building the model"), Loading("/r", "validation crops", 5, 9)]
    steps = [Step("/r", 1, 4, b, 40, 1.0) for b in range(1, 41)]
    stamps = [tr.board_stamp([job(p)]) for p in [None, *loading, *steps]]
    stamps.append(tr.board_stamp([job(EpochEnd("/r", 1, 4, record))]))  # type: ignore[arg-type]
    changes = [k for k, (a, b) in enumerate(zip(stamps, stamps[1:], strict=False)) if a != b]
    # 43 polls or more, 6 redraws: the first step (the first curve point), steps 10, 20, 30
    # and 40 (a quarter of the epoch each), the epoch's end
    assert [k - len(loading) + 1 for k in changes] == [1, 10, 20, 30, 40, 41]
    assert tr.REDRAWS_PER_EPOCH == 4 and tr.POLL_SECONDS >= 2


def test_the_progress_line_says_what_happens_before_the_first_point():
    said = [tr.job_line(Job(1, cfg_stub(), progress=p))[1] for p in (
        None,
        Preparing("/r", "building the model"),
        Loading("/r", "validation crops", 40, 366),
        Preparing("/r", "the first training steps (the slowest)"),
    )]  # fmt: skip
    assert said == [
        "#1 alexnet-classic: starting (loading torch, the data and the model)",
        "#1 alexnet-classic: building the model",
        "#1 alexnet-classic: loading validation crops (40/366)",
        "#1 alexnet-classic: the first training steps (the slowest)",
    ]


def cfg_stub() -> TrainConfig:
    return TrainConfig(task="classify", coco="a.json", images="img", model="alexnet-classic")


# ----------------------------------------------------------------------------- in a browser

try:  # the browser harness: it skips itself without playwright
    from tests.app import test_e2e as e2e

    page = e2e.page  # its Chromium page fixture
except pytest.skip.Exception:
    e2e = None  # type: ignore[assignment]


@pytest.fixture()
def train_server(sample_root, tmp_path):
    """The app on the sample's val split (its own copy: trained with a seeded 20% held out,
    9 steps an epoch with the quick recipe), with an empty runs folder of its own."""
    import os

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(sample_root / "annotations" / "instances_val2017.json", data / "val.json")
    env = {k: v for k, v in os.environ.items() if k != "EXPLORER_DATA_ROOTS"}
    env["EXPLORER_CACHE"], env["EXPLORER_WORK"] = str(tmp_path / "cache"), str(tmp_path / "work")
    env["EXPLORER_COCO"] = str(data / "val.json")
    env["EXPLORER_IMAGES"] = str(sample_root / "val2017")
    for url in e2e.serve(env, tmp_path / "server.log"):
        yield url, tmp_path / "work" / "runs"


def button(page, name, exact=False):
    """A button of the page itself (Streamlit's own header has a Stop button too)."""
    return page.get_by_test_id("stMain").get_by_role("button", name=name, exact=exact)


def notices(page, pattern):
    """The page's notices (alerts) that match: not the runs table's cells."""
    return page.get_by_test_id("stAlert").filter(has_text=pattern)


PROGRESS = re.compile(r"epoch \d+/\d+, batch \d+/\d+")
KEPT = re.compile(r"stopped by the user; last\.pt keeps the run as of (.+?): Resume")


@pytest.mark.e2e
@pytest.mark.skipif(e2e is None or not Path(e2e.CHROMIUM).exists(), reason="no browser here")
def test_stop_says_what_it_kept_and_resume_continues_it(train_server, page):
    """Walk 2 of issue 22: Stop during the first epoch said "the run can be resumed", there was
    no Resume button and the epoch was lost."""
    url, runs_root = train_server
    page.goto(url + "/train")
    page.get_by_role("heading", name="Train").wait_for(timeout=60_000)
    e2e.settle(page)
    button(page, re.compile("^Start")).click()  # alexnet-classic, quick
    page.get_by_text(PROGRESS).wait_for(timeout=300_000)  # training: stop it now
    button(page, "Stop", exact=True).click()
    notice = notices(page, KEPT)
    notice.wait_for(timeout=120_000)
    e2e.settle(page)
    e2e.no_exception(page)
    kept = KEPT.search(notice.inner_text()).group(1)  # "batch 3 of epoch 1 (step 3)"
    [run] = list(runs_root.iterdir())
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "stopped" and kept in status["message"]
    steps_kept = status["step"]
    assert steps_kept > 0 and (run / "last.pt").is_file()
    e2e.shot(page, "train-stopped")

    resumed_at = time.time()
    button(page, "Resume", exact=True).click()  # the stopped run is the one offered
    page.get_by_text(PROGRESS).wait_for(timeout=300_000)
    assert notices(page, KEPT).count() == 0  # the stale "stopped" notice went with the resume
    button(page, "Stop", exact=True).click()
    notices(page, re.compile("stopped by the user; last.pt keeps")).wait_for(timeout=120_000)
    e2e.settle(page)
    e2e.no_exception(page)
    assert notices(page, re.compile("stopped by the user")).count() == 1  # one notice
    button(page, "Dismiss", exact=True).click()
    e2e.settle(page)
    assert notices(page, re.compile("stopped by the user")).count() == 0
    # Resume continued the kept steps: those before it were written before the resume, the
    # next ones after it, and none twice
    lines = [r for r in runs.read_metrics(run) if r["kind"] == "step"]
    assert [r["step"] for r in lines] == list(range(1, len(lines) + 1))
    assert len(lines) > steps_kept
    assert all((r["time"] < resumed_at) == (r["step"] <= steps_kept) for r in lines)
