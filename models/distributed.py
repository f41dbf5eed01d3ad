"""DDP set-up and tear-down from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); a no-op otherwise."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistContext:
    """Where this process runs: rank / world size (1 when not under torchrun) and its device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def ddp(self) -> bool:
        return self.world > 1


def resolve_device(device: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto" -> cuda:LOCAL_RANK when a GPU is visible, else cpu; "cuda" -> cuda:LOCAL_RANK."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(device)


def setup(device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (nccl on GPU, gloo on CPU); otherwise single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world <= 1:
        return DistContext(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        here = True
    return DistContext(rank=rank, world=world, local_rank=local_rank, device=dev, initialised_here=here)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if setup() joined it."""
    if ctx.initialised_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (identity on one process)."""
    if ctx.ddp:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's object, in rank order (a one-element list on one process); used once per evaluation."""
    if not ctx.ddp:
        return [obj]
    out = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's object on every rank."""
    if not ctx.ddp:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.ddp:
        dist.barrier()
