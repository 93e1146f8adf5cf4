"""Train: start runs in the background, watch them live, compare curves, import curves."""

from pathlib import Path

import pandas as pd
import streamlit as st

from explorer.app import caches, dataset
from explorer.coco.sources import training_split
from explorer.errors import ExplorerError
from explorer.models import SMP_ENCODERS
from explorer.training import PRESET_NAMES, TrainConfig, runs, task_models
from explorer.training.events import Loading, Step
from explorer.types import DEVICES, TASKS
from explorer.viz import figures

source, index = dataset.page_dataset()
jobs = caches.job_queue()
st.title("Train")

with st.form("t_form"):
    c1, c2, c3, c4 = st.columns(4)
    task = c1.selectbox("Task", TASKS, key="t_task")
    model = c2.selectbox(
        "Model",
        task_models("classify") + task_models("segment"),
        key="t_model",
        help="classify: alexnet-classic (from scratch), alexnet (fine-tune from ImageNet when the "
        "weights are here); segment: smp-deeplabv3(plus) with an encoder, torchvision DeepLabV3",
    )
    preset = c3.selectbox(
        "Preset",
        [*PRESET_NAMES, "none"],
        key="t_preset",
        help="quick: a recipe that trains the sample in minutes on a CPU",
    )
    epochs = c4.number_input("Epochs (0 = the preset's)", 0, 500, 0, key="t_epochs")
    c5, c6, c7, c8 = st.columns(4)
    encoder = c5.selectbox("Encoder (smp)", ["(preset)", *SMP_ENCODERS], key="t_encoder")
    pretrained = c6.checkbox("Start from published weights", key="t_pretrained")
    freeze = c7.checkbox("Freeze conv features (alexnet)", key="t_freeze")
    device = c8.selectbox("Device", DEVICES, key="t_device")
    split = training_split(source)
    st.caption(f"Data: {split.label}")
    submitted = st.form_submit_button("Start (queued after the runs before it)", type="primary")
if submitted:
    try:
        if model not in task_models(task):
            raise ExplorerError(
                f"{model} cannot be trained for {task}; "
                f"choose one of {', '.join(task_models(task))}"
            )
        cfg = TrainConfig(
            task=task,
            model=model,
            coco=split.coco,
            images=split.images,
            val_coco=split.val_coco,
            val_images=split.val_images,
            encoder=None if encoder == "(preset)" else encoder,
            pretrained=pretrained,
            freeze_features=freeze,
            epochs=epochs or None,
            device=device,
            preset=None if preset == "none" else preset,
        ).resolved()
        st.session_state["t_last_job"] = jobs.submit(cfg)
        st.toast(f"queued: {task} with {model}")
    except ExplorerError as e:
        st.error(str(e))


@st.fragment(run_every=1.0)
def live() -> None:
    """Polls the job queue (the worker thread never calls Streamlit)."""
    active = [j for j in jobs.snapshot() if j.status in ("queued", "running")]
    for job in active:
        p = job.progress
        c1, c2 = st.columns([6, 1])
        if job.status == "queued":
            c1.info(f"#{job.id} {job.config.task} {job.config.model}: queued")
        elif isinstance(p, Step):
            done = (p.epoch - 1 + p.batch / p.batches) / p.epochs
            last = job.last or {}
            score = {k: v for k, v in last.items() if k in ("val_acc", "val_miou")}
            c1.progress(
                min(done, 1.0),
                text=f"#{job.id} {job.config.model}: epoch {p.epoch}/{p.epochs}, "
                f"batch {p.batch}/{p.batches}, loss {p.loss:.3f}"
                + "".join(f", {k} {v:.3f}" for k, v in score.items()),
            )
        else:  # loading, between epochs, or not started
            done, total = (p.done, p.total) if isinstance(p, Loading) else (0, 1)
            c1.progress(done / max(total, 1), text=f"#{job.id}: {p.phase if p else 'starting'}")
        if c2.button("Stop", key=f"t_stop_{job.id}"):
            jobs.stop(job.id)
    for job in [j for j in jobs.snapshot() if j.status in ("failed", "stopped")][:3]:
        show = st.error if job.status == "failed" else st.warning
        show(f"#{job.id} {job.config.model} {job.status}: {job.message}")
    table = runs.list_runs()
    if table:
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "run": r.path.name,
                        "status": r.status,
                        "task": r.task,
                        "model": r.model,
                        "epoch": f"{r.epoch}/{r.epochs}",
                        "best": r.best,
                        "metric": r.best_metric,
                        "duration s": round(r.seconds),
                        "device": r.device,
                    }
                    for r in table
                ]
            ),
            hide_index=True,
            key="t_runs",
        )
    else:
        st.info("No runs yet: start one above.")
    running = [j for j in active if j.status == "running" and j.run_dir]
    if running:
        chart([running[0].run_dir], "tl", imported=False)


def chart(chosen: list[str], key: str = "t", imported: bool = True) -> None:
    frames = [runs.run_curves(runs.runs_root() / name) for name in chosen]
    frames += list(st.session_state.get("t_imported", {}).values()) if imported else []
    curves = pd.concat(frames) if frames else pd.DataFrame()
    if curves.empty:
        st.info("No curves yet.")
        return
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    metrics = sorted(curves["metric"].unique())
    default = [m for m in ("train_loss", "val_loss") if m in metrics] or metrics[:1]
    metric = c1.multiselect(
        "Metrics (train solid, val dashed)", metrics, default=default, key=f"{key}_metric"
    )
    x = c2.radio("x axis", ["step", "epoch", "wall"], horizontal=True, key=f"{key}_x")
    smoothing = c3.slider("Smoothing", 0.0, 0.99, 0.6, key=f"{key}_smooth")
    log = c4.toggle("Log y", key=f"{key}_log")
    st.plotly_chart(figures.training_curves(curves, metric, x, smoothing, log), key=f"{key}_curves")


live()
st.subheader("Curves")
names = [r.path.name for r in runs.list_runs()]
if not st.session_state.get("t_watch") and names:  # show the newest runs until the user picks
    st.session_state["t_watch"] = names[:3]
st.session_state["t_watch"] = [n for n in st.session_state.get("t_watch", []) if n in names]
watch = st.multiselect("Runs", names, key="t_watch")
chart(watch)

with st.expander("Import curves trained elsewhere (TensorBoard log folder or CSV)"):
    path = st.text_input("Path", key="t_import_path", placeholder="/path/to/tb_logs or curves.csv")
    if st.button("Import", key="t_import") and path:
        try:
            p = Path(path)
            df = runs.import_csv(p) if p.suffix.lower() == ".csv" else runs.import_tensorboard(p)
            st.session_state.setdefault("t_imported", {})[p.name] = df
            st.rerun()
        except ExplorerError as e:
            st.error(str(e))
