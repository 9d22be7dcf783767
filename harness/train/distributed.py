"""Distributed training under ``torchrun --nproc_per_node N`` (DDP; gloo on CPU, NCCL on CUDA).

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`init_distributed` reads them and initialises the default process group (``env://``) once.
Without them (a plain ``python`` / ``signbench run``) everything here degrades to one process:
rank 0 of 1, barriers are no-ops, nothing is wrapped.

Conventions the trainer and runner follow: data is sharded with ``BucketBatchSampler``'s
``num_replicas`` / ``rank``; evaluation and every file write happen on rank 0 only, the others wait
at a barrier; values every rank must agree on (the dev metric choosing the best checkpoint) are
broadcast from rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"environment variable WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not "
                         f"an integer") from None


def init_distributed(device: torch.device | str = "cpu") -> DistInfo:
    """Initialise the process group from the environment when ``WORLD_SIZE`` > 1.

    Backend: NCCL for a CUDA device, gloo otherwise. On CUDA the process's device is set to
    ``cuda:LOCAL_RANK``. Calling it again returns the existing group's info.
    """
    world = env_world_size()
    if world <= 1:
        return DistInfo()
    device = torch.device(device)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        for key in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise ValueError(f"WORLD_SIZE={world} but {key} is not set; launch with "
                                 f"torchrun --nproc_per_node N")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def current() -> DistInfo:
    """The info of an initialised group, or single-process info."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def broadcast_object(value: Any, src: int = 0) -> Any:
    """``value`` from rank ``src`` on every rank (identity in one process)."""
    if not current().enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: float) -> float:
    """Mean of a float over ranks (identity in one process); for logging only."""
    if not current().enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def wrap_ddp(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``DistributedDataParallel(module)`` when distributed, else ``module``.

    ``find_unused_parameters=True`` because stages freeze parts of a method and some losses skip
    branches; the wrapper is rebuilt per stage since DDP fixes the trainable set at construction.
    """
    if not current().enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def cleanup() -> None:
    """Destroy the process group if this module's caller created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
