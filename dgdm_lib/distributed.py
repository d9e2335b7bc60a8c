"""Distributed runs under ``torchrun`` (which sets RANK, LOCAL_RANK, WORLD_SIZE): who this process
is, the process group, and the two collectives the training loop needs. Every function is a
no-op, or the identity, in a plain single-process run."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from dgdm_lib.config import get_device

__all__ = ["DistributedInfo", "all_reduce_sum", "barrier", "distributed_info", "init_distributed", "is_main_process"]


@dataclass(frozen=True)
class DistributedInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def distributed_info() -> DistributedInfo:
    """Rank, local rank and world size of this process (``world_size == 1`` when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())
    return DistributedInfo()


def is_main_process() -> bool:
    """True on rank 0, and in any non-distributed run."""
    return distributed_info().is_main


def init_distributed(device: torch.device | str | None = None) -> DistributedInfo:
    """Initialise the process group when launched by torchrun (``WORLD_SIZE > 1``).

    NCCL on CUDA (one GPU per process, ``LOCAL_RANK``), gloo on CPU. A no-op otherwise.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1 or (dist.is_available() and dist.is_initialized()):
        return distributed_info()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    device = torch.device(device) if device is not None else get_device()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return distributed_info()


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum a tensor over all ranks (identity when not distributed)."""
    if distributed_info().enabled:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier() -> None:
    """Wait for every rank (nothing to wait for when not distributed)."""
    if distributed_info().enabled:
        dist.barrier()
