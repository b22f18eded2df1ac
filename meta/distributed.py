"""torchrun helpers: rank and world size, process group set-up, gradient all-reduce.

Under ``torchrun --nproc_per_node=N -m meta train ...`` every rank samples the same meta-batch
(same sampler seed) and takes tasks ``rank::N``; each task's loss is divided by the *whole*
meta-batch size, so summing the gradients over ranks gives the single-process meta-gradient.
Without torchrun (no ``WORLD_SIZE`` in the environment) everything is a no-op with rank 0 of 1.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.distributed as dist

__all__ = ["Context", "setup", "teardown", "all_reduce_sum", "all_reduce_grads", "barrier"]


class Context(NamedTuple):
    """Where this process sits: ``rank`` of ``world_size``, and its torch device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0


def setup(device: str = "cpu") -> Context:
    """Join the process group started by torchrun (gloo on CPU, NCCL on CUDA), if any.

    device : "cpu" or "cuda"; under torchrun CUDA ranks use ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise ValueError(f"device: expected an available CUDA device, got {device!r} without CUDA")
    if world_size <= 1:
        return Context(0, 1, torch.device(device))
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        torch_device = torch.device("cuda", local)
    else:
        torch_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), torch_device)


def teardown(ctx: Context) -> None:
    """Leave the process group (if one was joined)."""
    if ctx.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    """Wait for every rank (no-op in a single process)."""
    if ctx.world_size > 1:
        dist.barrier()


def all_reduce_sum(ctx: Context, tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place; returns it (CPU tensors go through the device for NCCL)."""
    if ctx.world_size > 1:
        buffer = tensor.to(ctx.device)
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
        tensor.copy_(buffer)
    return tensor


def all_reduce_grads(ctx: Context, parameters: Iterable[torch.Tensor]) -> None:
    """Sum ``.grad`` over ranks in one flat all-reduce (missing grads count as zeros).

    Each rank's gradients must already carry the weight ``1 / meta_batch_size`` per task, so
    the sum is the meta-gradient of the whole meta-batch.
    """
    parameters = list(parameters)
    for p in parameters:   # the same in one process and many, so Adam sees the same steps
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if ctx.world_size <= 1:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in parameters:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n
