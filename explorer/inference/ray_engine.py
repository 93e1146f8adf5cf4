"""Predictions on a Ray cluster: the same inputs, model code and prediction cache as the local
runner, spread over many machines (``--engine ray``).

A Ray Data pipeline: one row per item → CPU map tasks that read, decode and preprocess with
:func:`explorer.inference.runner.load_input` (what the local runner's workers call) → an actor
pool whose actors each hold one copy of the model (put in the object store once) and run it with
:func:`explorer.inference.runner.forward` → back to the driver, which stores each output in the
prediction cache as it arrives (:func:`explorer.inference.cache.predict` does that for every
engine): a killed driver loses nothing already stored, and a rerun computes only the rest.

The image folder must be readable at the same path on every node (a shared file system).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from explorer.coco.dataset import Dataset
from explorer.errors import ExplorerError
from explorer.inference.options import RunOptions
from explorer.inference.outputs import codec_for
from explorer.inference.runner import (
    Item,
    Prediction,
    forward,
    item_files,
    load_input,
)
from explorer.models.weights import LoadedModel

# A read task or an actor asks for this much of a CPU: on a 2-CPU machine a pool that takes
# every CPU leaves the read tasks none, and the pipeline waits forever (measured, Ray 2.60).
# Failed read tasks and actors are retried by Ray Data itself (actors are restarted).
READ_CPUS = 0.25
ACTOR_CPUS = 0.5
ENV_ADDRESS = "EXPLORER_RAY_ADDRESS"


@dataclass(frozen=True)
class RayEngine:
    """Where to run: ``address`` None starts a local cluster on this machine; ``"auto"`` joins
    the one running here; ``"ray://HOST:10001"`` a remote one (Ray Client). ``workers`` model
    actors, each with ``gpus_per_worker`` GPUs (0: on CPUs)."""

    address: str | None = None
    workers: int = 1
    gpus_per_worker: float = 0.0

    def run(
        self, model: LoadedModel, dataset: Dataset, items: Sequence[Item], options: RunOptions
    ) -> Iterator[Prediction]:
        """Like :func:`explorer.inference.runner.run`, on the cluster (``options.workers``, this
        process's loader workers, are not used: the cluster's read tasks decode)."""
        paths, sizes = item_files(dataset, items)
        done = 0
        for n, p in enumerate(paths):
            if not isinstance(p, str):
                done += 1
                yield Prediction(items[n], None, str(p))
        rows = [_row(n, p, sizes[n], items[n]) for n, p in enumerate(paths) if isinstance(p, str)]
        if not rows:
            return
        for n, output, error in self._outputs(model, rows, options.batch_size):
            options.check_cancel()
            done += 1
            yield Prediction(items[n], output, error or None)
            if options.progress:
                options.progress(done, len(items))

    def _outputs(self, model: LoadedModel, rows: list[dict], batch_size: int | None):
        ray = connect(self.address)
        device = "cuda" if self.gpus_per_worker > 0 else "cpu"
        on_cpu = dataclasses.replace(model, module=model.module.to("cpu"), device="cpu")
        model_ref = ray.put(on_cpu)
        blocks = max(1, min(len(rows), max(2 * self.workers, len(rows) // 8), 200))
        ds = ray.data.from_items(rows, override_num_blocks=blocks)
        ds = ds.map(_ReadInput(model.preprocess), num_cpus=READ_CPUS)
        ds = ds.map_batches(
            _Predictor,
            fn_constructor_kwargs={"model_ref": model_ref, "device": device},
            batch_size=batch_size or codec_for(model).default_batch_size(device),
            batch_format="numpy",
            concurrency=max(1, min(self.workers, len(rows))),
            num_cpus=ACTOR_CPUS,
            num_gpus=self.gpus_per_worker,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            yield from zip(
                batch["n"].tolist(),
                codec_for(model).from_columns(batch, [bool(e) for e in batch["error"]]),
                batch["error"].tolist(),
                strict=True,
            )


def _row(n: int, path: str, size: tuple[int, int], item: Item) -> dict:
    return {"n": n, "path": path, "w": size[0], "h": size[1], "box": list(item.box or ())}


class _ReadInput:
    """Row → row with the preprocessed input ``x`` (float32 CHW), or ``error`` and an empty
    ``x``: an unreadable image is a record to report, not a failed task."""

    def __init__(self, preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, row: dict) -> dict:
        import torch

        torch.set_num_threads(1)
        box = tuple(float(v) for v in row["box"]) if len(row["box"]) else None
        size = (int(row["w"]), int(row["h"]))
        try:
            x = load_input(row["path"], size, box, self.preprocess).numpy()
            error = ""
        except ExplorerError as e:
            x, error = np.zeros((0, 0, 0), np.float32), str(e)
        # bytes and a shape, not a tensor column: inputs of many shapes and failed rows would
        # make Ray's Arrow blocks disagree on the column's type
        return {"n": row["n"], "w": size[0], "h": size[1], "error": error, **_packed("x", x)}


def _packed(name: str, array: np.ndarray) -> dict:
    return {name: array.tobytes(), f"{name}_shape": list(array.shape)}


def _unpacked(data: bytes, shape, dtype) -> np.ndarray:
    return np.frombuffer(data, dtype).reshape([int(v) for v in shape])


class _Predictor:
    """One actor: the model, loaded once, on its device; a batch of inputs → outputs. Inputs of
    different sizes (whole images) run in groups of one size: no padding changes a result."""

    def __init__(self, model_ref, device: str) -> None:
        import ray
        import torch

        model = ray.get(model_ref) if isinstance(model_ref, ray.ObjectRef) else model_ref
        self.model = dataclasses.replace(model, module=model.module.to(device), device=device)
        if device == "cpu":
            torch.set_num_threads(max(1, int(ACTOR_CPUS * 2)))

    def __call__(self, batch: dict) -> dict:
        import torch

        errors = [str(e) for e in batch["error"]]
        xs = [
            _unpacked(b, sh, np.float32) for b, sh in zip(batch["x"], batch["x_shape"], strict=True)
        ]
        out: list = [None] * len(xs)
        groups: dict[tuple, list[int]] = {}
        for k, x in enumerate(xs):
            if not errors[k]:
                groups.setdefault(tuple(x.shape), []).append(k)
        for ks in groups.values():
            stacked = torch.from_numpy(np.stack([xs[k] for k in ks]))
            sizes = [(int(batch["w"][k]), int(batch["h"][k])) for k in ks]
            for k, o in zip(ks, forward(self.model, stacked, sizes), strict=True):
                out[k] = o
        return {"n": batch["n"], "error": np.array(errors), **codec_for(self.model).columns(out)}


_CONNECT_LOCK = threading.Lock()


def connect(address: str | None):
    """The ``ray`` module, connected: to ``address``, or to a new local cluster.

    Raises:
        ExplorerError: Ray is not installed, or the cluster cannot be reached (one line).
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise ExplorerError(
            "the Ray engine needs ray[data]: pip install -r requirements.txt"
        ) from None
    with _CONNECT_LOCK:
        if not ray.is_initialized():
            _init(ray, address)
    _quiet(ray)
    return ray


def _init(ray, address: str | None) -> None:
    import logging

    # Ray's C++ core and its Python loggers speak on stderr, between our progress bar lines;
    # what matters to a user ends up in our one-line errors instead
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    logging.getLogger("ray").setLevel(logging.ERROR)
    kw = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        with warnings.catch_warnings():  # the same reasons, said again as warnings
            warnings.simplefilter("ignore")
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=os.cpu_count() or 1, **kw)
    except Exception as e:  # noqa: BLE001 - Ray raises many kinds; each ends here as one line
        where = address or "a new local cluster"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExplorerError(f"cannot reach the Ray cluster at {where}: {reason}") from None


def _quiet(ray) -> None:
    """Ray Data's own progress bars and logs would interleave with ours."""
    import logging

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    for name in ("ray.data", "ray"):
        logging.getLogger(name).setLevel(logging.ERROR)
