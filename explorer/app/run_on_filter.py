"""Long work on the current Browse filter, run in the page with a progress bar and a Stop button.

Every model page has the same block: the images the Browse filter keeps, a button, a progress
bar, and the result kept in the session for exactly that dataset, filter and models (so a result
never shows under another dataset or model). :func:`evaluate_on_filter` is that block.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import streamlit as st

from explorer.app import caches, state
from explorer.coco import CocoIndex
from explorer.coco.sources import DatasetSource
from explorer.errors import ExplorerError
from explorer.inference.options import DEFAULT_OPTIONS, RunOptions
from explorer.inference.ray_engine import ENV_ADDRESS, RayEngine
from explorer.inference.runner import Rate

T = TypeVar("T")


def result_key(source: DatasetSource, index: CocoIndex, rows: np.ndarray, *models) -> str:
    """Identifies a saved page result: the dataset, the exact image rows and the models' weights."""
    h = hashlib.sha1(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    for part in (
        index.fingerprint,
        source.images,
        *(f"{m.name}|{m.encoder}|{m.weights_key}" for m in models),
    ):
        h.update(str(part).encode())
    return h.hexdigest()


def run_with_progress(
    label: str, fn: Callable[[RunOptions], T], options: RunOptions = DEFAULT_OPTIONS
) -> T | None:
    """Run ``fn(options)`` with an ``st.progress`` bar as its progress (in the script thread)
    and a Stop button: a click reruns the page, which ends this run; finished predictions stay
    cached, so running again resumes. A user error is shown with ``st.error`` (None returned)."""
    box = st.empty()
    with box.container():
        st.button("Stop", key=f"stop_{label}", help="Stops the run; what is done stays cached")
        bar = st.progress(0.0, text=label)

    rate = Rate()

    def progress(done: int, total: int) -> None:
        bar.progress(done / max(total, 1), text=f"{label}: {rate(done, total)}")

    try:
        return fn(options.reporting(progress))
    except ExplorerError as e:  # no image folder, unreadable files, ...: say so, keep the page
        st.error(str(e))
        return None
    finally:
        box.empty()


@dataclass(frozen=True)
class RunBlock:
    """How a page's run block reads: its widgets' prefix and its texts.

    Attributes:
        key: the page's prefix: the button is ``<key>_run``, the result ``<key>_result``.
        button: the button's label.
        working: the progress bar's label.
        what: the caption after the number of images (e.g. ", every non-crowd object's crop").
        primary: the button is the page's primary one.
    """

    key: str
    button: str
    working: str
    what: str
    primary: bool = False


def evaluate_on_filter(
    block: RunBlock,
    source: DatasetSource,
    index: CocoIndex,
    models: tuple,
    run: Callable[[np.ndarray, RunOptions], T],
) -> T | None:
    """The "run on the current filter" block of a model page.

    Args:
        block: the block's widget prefix and texts.
        models: the models the result depends on (part of the result's identity).
        run: ``run(image_rows, options)`` computes the result (``options`` carry the progress
            bar and where the models run).

    Returns:
        The result computed for this dataset, filter and models (now or on an earlier run), or
        None when there is none yet.
    """
    key = block.key
    rows = caches.filtered_image_rows(source.annotations, state.browse_filter())
    st.caption(f"{len(rows):,} images{block.what}")
    identity = result_key(source, index, rows, *models)
    engine = _engine_choice(key)
    if st.button(block.button, key=f"{key}_run", type="primary" if block.primary else "secondary"):
        result = run_with_progress(block.working, lambda options: run(rows, options), engine)
        if result is not None:
            st.session_state[f"{key}_result"] = (identity, result)
    saved = st.session_state.get(f"{key}_result")
    return saved[1] if saved is not None and saved[0] == identity else None


def _engine_choice(key: str) -> RunOptions:
    """Where the models run: this machine, or (when ``EXPLORER_RAY_ADDRESS`` names one) the Ray
    cluster."""
    address = os.environ.get(ENV_ADDRESS, "").strip()
    if not address:
        return DEFAULT_OPTIONS
    here, cluster = "this machine", f"Ray cluster ({address})"
    where = st.radio("Run on", (here, cluster), key=f"{key}_engine", horizontal=True)
    if where == here:
        return DEFAULT_OPTIONS
    workers = os.environ.get("EXPLORER_RAY_WORKERS", "2")
    engine = RayEngine(address=address, workers=int(workers) if workers.isdigit() else 2)
    return RunOptions(engine=engine)
