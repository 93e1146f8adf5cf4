"""The "Download COCO…" form: the same :func:`explorer.coco.download.download_coco` as the CLI,
run in a background thread that never calls Streamlit.

The thread writes its progress into a small registry (a dict under a lock, keyed by a job id the
session keeps); while it runs, a ``st.fragment(run_every=1.0)`` polls the registry and redraws
the progress, and it stops polling once the job ends. Widget keys start with ``dl_``.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field, replace

import streamlit as st

from explorer.coco.download import (
    DownloadRequest,
    DownloadResult,
    DownloadRun,
    HostUnreachable,
    Progress,
    download_coco,
)
from explorer.errors import ExplorerError
from explorer.types import COCO_HOST, COCO_SPLITS, JobStatus

KEY = "dl_"


@dataclass(frozen=True)
class DownloadJob:
    """A download as the form shows it (a snapshot: the worker replaces it, never mutates it).

    Attributes:
        id: the registry key.
        status: running, finished, stopped or failed.
        progress: the latest progress (None before the first).
        result: the paths written, once finished.
        message: the one-line reason when it failed.
        stop: set to stop the worker.
    """

    id: str
    status: JobStatus = "running"
    progress: Progress | None = None
    result: DownloadResult | None = None
    message: str = ""
    stop: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)


_LOCK = threading.Lock()
_JOBS: dict[str, DownloadJob] = {}


def _set(job_id: str, **fields) -> None:
    with _LOCK:
        _JOBS[job_id] = replace(_JOBS[job_id], **fields)


def get_job(job_id: str) -> DownloadJob | None:
    """The job's latest snapshot."""
    with _LOCK:
        return _JOBS.get(job_id)


def start_download(dest: str, split: str, categories: list[str], max_images: int, base_url: str):
    """Start a download in a worker thread; its job id. ``max_images`` 0 means all."""
    job = DownloadJob(uuid.uuid4().hex)
    with _LOCK:
        _JOBS[job.id] = job

    def work() -> None:
        try:
            request = DownloadRequest(
                dest,
                split,  # type: ignore[arg-type]
                categories=tuple(categories) or None,
                max_images=max_images or None,
            )
            run = DownloadRun(
                base_url=base_url, on_progress=lambda p: _set(job.id, progress=p), cancel=job.stop
            )
            result = download_coco(request, run)
            _set(job.id, status="finished", result=result)
        except HostUnreachable as e:
            _set(job.id, status="failed", message=f"Offline? {e}")
        except ExplorerError as e:
            _set(job.id, status="stopped" if job.stop.is_set() else "failed", message=str(e))
        except Exception as e:  # a bug: told in one line here, not lost in a thread
            _set(job.id, status="failed", message=f"download failed: {type(e).__name__}: {e}")

    threading.Thread(target=work, name=f"download-{job.id[:8]}", daemon=True).start()
    return job.id


def download_form(
    container, *, base_url: str = COCO_HOST, default_dest: str = "data/coco"
) -> DownloadResult | None:
    """Draw the form (or the running download's progress, or its result) into ``container``.

    Args:
        container: where to draw (a sidebar expander, a column, ``st.container()``).
        base_url: the host (a mirror; a local stand-in in tests).
        default_dest: the folder the form proposes.

    Returns:
        The finished download's result (on every rerun until "Download another" is pressed), so
        the caller can open ``result.annotations`` with ``result.images``; else None.
    """
    job = get_job(st.session_state.get(f"{KEY}job", ""))
    with container:
        if job is not None and job.status == "running":
            _progress_fragment(job.id)
            return None
        if job is not None and job.status == "finished":
            return _finished(job)
        if job is not None:
            st.error(job.message.splitlines()[0] if job.message else job.status)
        _form(base_url, default_dest)
    return None


def _form(base_url: str, default_dest: str) -> None:
    with st.form(f"{KEY}form"):
        split = st.selectbox("Split", COCO_SPLITS, key=f"{KEY}split")
        categories = st.text_input(
            "Categories (comma-separated; empty: all)", key=f"{KEY}categories"
        )
        max_images = st.number_input(
            "At most this many images (0: all)", 0, 200_000, 0, key=f"{KEY}max"
        )
        dest = st.text_input("Folder", default_dest, key=f"{KEY}dest")
        if st.form_submit_button("Download COCO"):
            names = [c.strip() for c in categories.split(",") if c.strip()]
            job_id = start_download(dest, split, names, int(max_images), base_url)
            st.session_state[f"{KEY}job"] = job_id
            st.rerun()


def _finished(job: DownloadJob) -> DownloadResult:
    r = job.result
    assert r is not None
    st.success(f"{r.images_total} images in {r.images or r.annotations.parent}")
    if r.shared_names:
        st.info(f"{r.shared_names} image records name a file another record names too: one file.")
    st.code(str(r.annotations), language=None)
    if st.button("Download another…", key=f"{KEY}again"):
        st.session_state.pop(f"{KEY}job", None)
        st.rerun()
    return r


def _progress_fragment(job_id: str) -> None:
    @st.fragment(run_every=1.0)
    def poll() -> None:
        job = get_job(job_id)
        if job is None or job.status != "running":
            st.rerun()  # the whole app: the caller gets the result, and polling stops
        p = job.progress
        if p is None or p.stage == "annotations":
            done, total = (p.bytes_done, p.bytes_total) if p else (0, None)
            st.progress(done / total if total else 0.0, f"annotations: {done / 1e6:.1f} MB")
        else:
            text = f"{p.files_done} of {p.files_total} images, {p.bytes_done / 1e6:.1f} MB"
            st.progress(p.files_done / max(1, p.files_total), text)
        if st.button("Stop", key=f"{KEY}stop"):
            job.stop.set()

    poll()
