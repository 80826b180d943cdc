"""Where the run executes: the device, and the process group under torchrun.

Under ``torchrun`` (RANK, WORLD_SIZE and LOCAL_RANK in the environment; one process or
more) the process group is initialised with gloo on CPU and NCCL on GPU (``backend: auto``
picks) and the model is wrapped in DDP; otherwise the run is one plain process and every
collective below is a no-op. On CUDA, TF32 matmuls and
cuDNN are enabled (training runs under bf16 autocast anyway).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from trainer.config import RunConfig
from trainer.errors import TrainerError

_TIMEOUT = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 or dist.is_initialized()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else default
    except ValueError as error:
        raise TrainerError(f"environment variable {name}={value!r} is not an integer") from error


def _device(config: RunConfig, local_rank: int) -> torch.device:
    if config.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if config.device == "cuda":
            raise TrainerError(
                "device cuda was asked for but no CUDA GPU is visible (torch.cuda.is_available() "
                "is False); check the GPU request, CUDA_VISIBLE_DEVICES and the CUDA build of torch"
            )
        return torch.device("cpu")
    torch.cuda.set_device(local_rank)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return torch.device("cuda", local_rank)


def setup(config: RunConfig) -> Context:
    """The device and, under torchrun, the initialised process group."""
    rank = _env_int("RANK", 0)
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if config.device != "cpu":
        # deterministic cuBLAS needs this before the first CUDA call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = _device(config, local_rank)
    under_torchrun = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    if (under_torchrun or world_size > 1) and not dist.is_initialized():
        backend = config.distributed.backend
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl" and device.type != "cuda":
            raise TrainerError("distributed.backend nccl needs GPUs; use gloo (or auto) on CPU")
        extra: dict[str, Any] = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world_size, timeout=_TIMEOUT, **extra
        )
    return Context(rank, world_size, local_rank, device)


def any_true(ctx: Context, *flags: bool) -> tuple[bool, ...]:
    """Each flag OR-ed over every rank (so all ranks take the same branch)."""
    if not ctx.distributed:
        return flags
    values = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in values.tolist())


def broadcast(ctx: Context, value: Any) -> Any:
    """Rank 0's value on every rank."""
    if not ctx.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, device=ctx.device)
    return box[0]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier(device_ids=[ctx.local_rank] if ctx.cuda else None)


def teardown(ctx: Context) -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
