"""Train: start runs in the background, watch them live, resume them, compare curves, import
curves."""

from pathlib import Path

import pandas as pd
import streamlit as st

from explorer.app import caches, dataset_picker
from explorer.app import training_monitor as tr
from explorer.coco.sources import training_split
from explorer.errors import ExplorerError
from explorer.models import get_spec
from explorer.training import PRESET_NAMES, TrainConfig, runs, task_models
from explorer.training.finetune import has_published_weights, published_weights_missing
from explorer.training.jobs import visible_gpus
from explorer.types import DEVICES, TASKS
from explorer.viz.figures.curves import training_curves

source, index = dataset_picker.page_dataset()
jobs = caches.job_queue()
st.title("Train")

c1, c2, c3, c4 = st.columns(4)
task = c1.selectbox("Task", TASKS, key="t_task")
# this task's models only: a wrong pick cannot happen (one widget per task keeps each pick)
model = c2.selectbox("Model", task_models(task), key=f"t_model_{task}")
spec = get_spec(model)
c2.caption(spec.description)
preset = c3.selectbox(
    "Preset",
    [*PRESET_NAMES, "none"],
    key="t_preset",
    help="quick: a recipe that trains the sample in minutes on a CPU, within a time budget",
)
epochs = c4.number_input("Epochs (0 = the preset's)", 0, 500, 0, key="t_epochs")
# one row that wraps: each widget keeps the width its label needs (a quarter cut them)
c5 = c6 = c7 = c8 = st.container(horizontal=True, vertical_alignment="bottom")
encoder = (
    c5.selectbox("Encoder", ["(preset)", *spec.encoders], key=f"t_encoder_{model}")
    if spec.encoders
    else None
)
published = has_published_weights(model)
pretrained = (
    c6.checkbox(
        "Start from published weights",
        key="t_pretrained",
        disabled=not published,
        help=None if published else f"{model} has no published weights: it trains from scratch",
    )
    and published
)
if pretrained and (missing := published_weights_missing(model)):
    st.warning(missing)
freeze = c7.checkbox("Freeze conv features", key="t_freeze", disabled=spec.freeze_features is None)
device = c8.selectbox("Device", DEVICES, key="t_device")
gpus = visible_gpus() if device in ("auto", "cuda") else 0
processes = (
    gpus
    if gpus > 1 and st.checkbox(f"On all {gpus} GPUs (torchrun, one process each)", key="t_gpus")
    else 1
)
split = training_split(source)
st.caption(f"Data: {split.label}")
if st.button("Start (queued after the runs before it)", type="primary", key="t_start"):
    try:
        cfg = TrainConfig(
            task=task,
            model=model,
            coco=split.coco,
            images=split.images,
            val_coco=split.val_coco,
            val_images=split.val_images,
            encoder=None if encoder in (None, "(preset)") else encoder,
            pretrained=pretrained,
            freeze_features=freeze and spec.freeze_features is not None,
            epochs=epochs or None,
            device=device,
            preset=None if preset == "none" else preset,
        ).resolved()
        jobs.submit(cfg, processes=processes)  # cheap: the worker loads torch, data and model
        st.toast(f"queued: {task} with {model}")
    except ExplorerError as e:
        st.error(str(e))


def chart(names: list[str]) -> None:
    curves = tr.run_curves(names)
    imported = list(st.session_state.get("t_imported", {}).values())
    if imported:
        curves = pd.concat([curves, *imported], ignore_index=True)
    if curves.empty:
        st.info(
            "No curves yet: they start with a run's first training step (the line above says "
            "what a running job is doing)."
        )
        return
    metrics = sorted(curves["metric"].unique())
    # the selection lives in session state only (no widget default beside it): kept while the
    # options change, and given the names of curves just imported
    st.session_state["t_metric"] = tr.metric_selection(
        st.session_state.get("t_metric"), metrics, st.session_state.pop("t_select", [])
    )
    # a row of its own: every chip whole
    metric = st.multiselect("Metrics (train solid, val dashed)", metrics, key="t_metric")
    c2, c3, c4 = st.columns([2, 2, 1])
    x = c2.radio("x axis", ["step", "epoch", "wall"], horizontal=True, key="t_x")
    smoothing = c3.slider("Smoothing", 0.0, 0.99, 0.6, key="t_smooth")
    log = c4.toggle("Log y", key="t_log")
    st.plotly_chart(training_curves(curves, metric, x, smoothing, log), key="t_curves")


def job_lines(polling: bool) -> None:
    """The queued and running jobs and the notices of ended ones: polled while a job is active
    (the worker never calls Streamlit). The runs table and the curves below are redrawn only
    when a job's state moved on (:func:`tr.board_stamp`), not at every poll."""
    if tr.needs_full_rerun(polling, jobs.busy()):
        st.rerun()  # start or stop the polling
    snapshot = jobs.snapshot()
    for job in [j for j in snapshot if j.status in ("queued", "running")]:
        c1, c2 = st.columns([6, 1])
        if job.status == "running":
            c1.progress(*tr.job_line(job))
        else:
            c1.info(f"#{job.id} {job.config.task} {job.config.model}: queued")
        if c2.button("Stop", key=f"t_stop_{job.id}") and jobs.stop(job.id):
            st.toast(f"#{job.id} removed from the queue")
    for job in jobs.notices()[:3]:
        c1, c2 = st.columns([6, 1])
        show = c1.error if job.status == "failed" else c1.warning
        show(f"#{job.id} {job.config.model} {job.status}: {job.message}")
        c2.button("Dismiss", key=f"t_dismiss_{job.id}", on_click=jobs.dismiss, args=(job.id,))
    if tr.board_stamp(snapshot) != st.session_state.get("t_board"):
        st.rerun()  # the runs table and the curves are out of date


def board() -> None:
    """The runs table, Resume, and the curves of the watched runs and the imported ones."""
    infos = runs.list_runs()
    if infos:
        table = tr.runs_table(infos)
        st.dataframe(
            table,
            hide_index=True,
            key="t_runs",
            column_config={
                "run": st.column_config.TextColumn(width="medium"),
                "note": st.column_config.TextColumn(width="large"),
            },
        )
        for run, note in zip(table["run"], table["note"], strict=True):  # in full, not cut
            if note:
                st.caption(f"**{run}**: {note}")
        with st.expander("What the files of a run folder are for"):
            st.table(tr.run_files_table())
    else:
        st.info("No runs yet: start one above.")
    resumable = [r for r in infos if r.resumable and str(r.path) not in jobs.active_runs()]
    if resumable:
        c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
        pick = c1.selectbox("A stopped run", [r.path.name for r in resumable], key="t_resume_run")
        if c2.button("Resume", key="t_resume"):
            path = runs.runs_root() / pick
            try:  # the same library call as the CLI's --resume RUN_DIR
                jobs.submit(runs.read_config(path), resume=str(path))
                st.rerun()
            except ExplorerError as e:
                st.error(str(e))
    st.subheader("Curves")
    names = [r.path.name for r in infos]
    st.session_state["t_watch"], st.session_state["t_followed"] = tr.watched(
        st.session_state.get("t_watch"),
        names,
        [Path(d).name for d in jobs.active_runs()],
        st.session_state.get("t_followed", frozenset()),
    )
    chart(st.multiselect("Runs", names, key="t_watch") if names else [])


polling = jobs.busy()
# what the board below shows; the poller reruns the page when the jobs move on from it
st.session_state["t_board"] = tr.board_stamp(jobs.snapshot())
st.fragment(run_every=tr.POLL_SECONDS if polling else None)(job_lines)(polling)
board()

with st.expander("Import curves trained elsewhere (TensorBoard log folder or CSV)"):
    path = st.text_input("Path", key="t_import_path", placeholder="/path/to/tb_logs or curves.csv")
    if st.button("Import", key="t_import") and path:
        try:
            dataset_picker.check_allowed(path)  # a shared server reads only its data roots
            p = Path(path)
            df = runs.import_csv(p) if p.suffix.lower() == ".csv" else runs.import_tensorboard(p)
            st.session_state.setdefault("t_imported", {})[p.name] = df
            st.session_state["t_select"] = sorted(df["metric"].unique())  # drawn at once
            st.rerun()
        except ExplorerError as e:
            st.error(str(e))
