"""Training on several processes (``torchrun``): which process this is, and the few collective
operations the trainer needs.

``torchrun`` starts one process per GPU (or per share of a CPU) with ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` set. Without them this is a world of one, and every function here does
nothing collective, so the single-process trainer runs the very same code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import numpy as np

from explorer.errors import ExplorerError

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The one process that writes the run folder, checkpoints, metrics and TensorBoard."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def from_environment(env: Mapping[str, str] | None = None) -> World:
    """The world ``torchrun`` describes in the environment (a world of one without it)."""
    variables = os.environ if env is None else env
    try:
        return World(
            rank=int(variables.get("RANK", 0)),
            size=int(variables.get("WORLD_SIZE", 1)),
            local_rank=int(variables.get("LOCAL_RANK", 0)),
        )
    except ValueError:
        raise ExplorerError("RANK, WORLD_SIZE and LOCAL_RANK must be integers") from None


def start(world: World, device: str) -> str:
    """Join the process group (nccl on CUDA, gloo on a CPU) and return this process's device:
    its own GPU on CUDA (``cuda:<local rank>``), else ``device`` itself."""
    if not world.distributed:
        return device
    import torch
    import torch.distributed as dist

    cuda = device.startswith("cuda")
    if cuda:
        if world.local_rank >= torch.cuda.device_count():
            raise ExplorerError(
                f"local rank {world.local_rank} but only {torch.cuda.device_count()} GPUs: "
                "give torchrun --nproc_per_node at most the number of GPUs"
            )
        device = f"cuda:{world.local_rank}"
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            timeout=timedelta(minutes=30),  # rank 0 alone loads and checks the data first
            device_id=torch.device(device) if cuda else None,
        )
    return device


def finish(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def sum_all(world: World, values: Sequence[float] | np.ndarray, device: str) -> np.ndarray:
    """Element-wise sums over every process (float64, exact for counts below 2**53)."""
    array = np.asarray(values, dtype=np.float64)
    if not world.distributed:
        return array
    import torch
    import torch.distributed as dist

    tensor = torch.from_numpy(array.copy()).to(device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().numpy()


def from_main(world: World, value: T) -> T:
    """Rank 0's ``value``, on every process (a picklable object; the others' are ignored)."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value]  # the other processes' value is replaced, never sent
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(world: World, n: int) -> np.ndarray:
    """This process's share of ``range(n)``: every index exactly once over all processes (no
    padding: a validation set is counted exactly, whatever its size)."""
    return np.arange(world.rank, n, world.size)


def parallel(world: World, model, device: str):
    """``(model to save, module to train)``: the same module in one process; under torchrun
    the second wraps the first in DistributedDataParallel (BatchNorm synchronised across GPUs;
    on CPUs PyTorch cannot synchronise it, and each process normalises its own batch)."""
    if not world.distributed:
        return model, model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    cuda = device.startswith("cuda")
    if cuda:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model, DistributedDataParallel(model, device_ids=[device] if cuda else None)
