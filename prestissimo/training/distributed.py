"""Multi-process training with torch.distributed, launched by `torchrun`.

Why torchrun + torch.distributed rather than accelerate: it ships with PyTorch (no extra
dependency), the same command scales from one CPU process (`python -m ...` or torchrun
--nproc-per-node 1) to multi-GPU (nccl) and multi-node (`torchrun --nnodes N --rdzv-endpoint ...`),
and it lets the loop average gradients per optimizer phase explicitly. That matters for the
adversarial post-training methods, whose generator and discriminator phases switch which network
receives gradients; the DistributedDataParallel wrapper assumes one fixed set of parameters gets
gradients on every backward. The arithmetic is DDP's: gradients summed across processes with one
all-reduce over a flattened buffer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "cpu") -> DistInfo:
    """Join the process group torchrun describes in the environment (nothing to do for one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(modules: dict[str, nn.Module], info: DistInfo) -> None:
    """Start every process from rank 0's weights."""
    if info.world_size <= 1:
        return
    for module in modules.values():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def sum_gradients(parameters: list[nn.Parameter], info: DistInfo) -> None:
    """Sum gradients across processes in one all-reduce (each process already scaled its share)."""
    if info.world_size <= 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_sum(value: float, info: DistInfo) -> float:
    if info.world_size <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()
