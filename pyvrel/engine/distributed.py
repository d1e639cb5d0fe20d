"""Process-group helpers for ``torchrun``: the same code runs as one process or many.

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init` reads them and starts
the default process group (NCCL for CUDA devices, gloo otherwise). Without them everything is a
single process and the collectives below are no-ops.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by torchrun (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_rank() -> int:
    """``RANK`` as set by torchrun (0 when not launched by it); known before the group starts."""
    return int(os.environ.get("RANK", "0"))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    """True on rank 0 (the process that logs and writes checkpoints)."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init(device: torch.device) -> bool:
    """Start the default process group when launched by torchrun with more than one process.

    Uses NCCL for a CUDA ``device`` (and makes ``cuda:LOCAL_RANK`` current), gloo otherwise. Returns
    True when this call started the group (the caller then ends it with :func:`shutdown`), False
    when there is a single process or a group already exists.
    """
    if is_initialized() or env_world_size() == 1:
        return False
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={env_world_size()} but {name} is not set: launch with torchrun")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return True


def shutdown() -> None:
    """End the default process group if there is one."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all processes (a new tensor; ``value`` itself when single-process).

    Use it for counts that normalise a loss (e.g. the number of ground-truth segments in the global
    batch), so that a loss averaged by DDP equals the single-process loss.
    """
    if not is_initialized():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` when single-process."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
