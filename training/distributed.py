"""Data-parallel training across processes and nodes (``torchrun``), as open_clip trains.

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything here is a no-op for one
process: rank 0 of a world of 1, ``gather_with_grad`` returns its input, ``barrier`` returns at once.

Under ``torchrun`` every process calls ``init()`` once: the gloo backend on CPU, nccl on CUDA (one
GPU per process, ``LOCAL_RANK``). Each step every rank draws the same global batch (same seeds) and
keeps its shard (``shard_rows``); features are gathered across ranks with gradients
(``torch.distributed.nn.functional.all_gather``: its backward sums the gradients of every rank's
copy back onto the owner), so each rank computes the loss of the whole global batch, and
DistributedDataParallel's gradient average makes the update the single-process one.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn

log = logging.getLogger("vitrine.training.distributed")
TIMEOUT = datetime.timedelta(minutes=60)  # rank 0 alone validates and writes the bundle meanwhile


def launched() -> bool:
    """True when started by ``torchrun`` (or any launcher that sets ``WORLD_SIZE``/``RANK``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def active() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init(device: str = "auto") -> torch.device:
    """Join the process group when launched by torchrun; returns this process's device.

    ``device``: ``auto`` (CUDA when available, else CPU), ``cpu`` or ``cuda``. On CUDA each process
    takes GPU ``LOCAL_RANK`` and the backend is nccl; on CPU it is gloo.
    """
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if not launched():
        return torch.device("cuda" if cuda else "cpu") if device == "auto" else torch.device(device)
    if dist.is_initialized():
        return _device(cuda)
    local = local_rank()
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    log.info(
        "rank %d of %d (local %d) on %s, backend %s",
        rank(),
        world(),
        local,
        _device(cuda),
        dist.get_backend(),
    )
    return _device(cuda)


def _device(cuda: bool) -> torch.device:
    return torch.device("cuda", local_rank()) if cuda else torch.device("cpu")


def shutdown() -> None:
    """Leave the process group (when one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """Global rank of this process (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def local_rank() -> int:
    """Rank within this node (``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes checkpoints, logs and the bundle (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank."""
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (filling on-disk caches), then the other ranks run it."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (picklable objects; tensors come back on CPU)."""
    if not active():
        return value
    box = [value if is_main() else None]
    device = torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else None
    dist.broadcast_object_list(box, src=0, device=device)
    return box[0]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Rows of every rank concatenated in rank order; gradients flow back to each rank's own rows."""
    if not active():
        return tensor
    with warnings.catch_warnings():  # its successor in _functional_collectives is still private
        warnings.filterwarnings("ignore", "torch.distributed.nn.functional.all_gather", FutureWarning)
        return torch.cat(dist_nn.all_gather(tensor), dim=0)


def shard_rows(batch_size: int) -> np.ndarray:
    """Rows of a global batch that this rank computes: every ``world``-th row from ``rank``.

    Strided so every rank sees every class of a P x K batch (the K items of a class are consecutive).
    """
    check_divisible(batch_size, "batch")
    return np.arange(rank(), batch_size, world())


def gathered_order(batch_size: int) -> np.ndarray:
    """Global-batch rows in the order ``gather_with_grad`` returns them (rank 0's shard first)."""
    size = world()
    return np.concatenate([np.arange(r, batch_size, size) for r in range(size)])


def check_divisible(batch_size: int, what: str) -> None:
    """Raise ValueError unless ``batch_size`` splits evenly across the ranks."""
    if batch_size % world():
        raise ValueError(f"{what} size {batch_size} must be divisible by the number of processes ({world()})")


def wrap(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``module`` under DistributedDataParallel when several processes train (else unchanged).

    DDP broadcasts rank 0's parameters and buffers once here, then averages gradients in backward.
    """
    if not active():
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)
