"""DDP set-up and tear-down from the torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK); a no-op otherwise."""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

log = logging.getLogger("models.distributed")
INSTALL_HINT = "install the CUDA build of the same torch with `make install ACCEL=cuda` (README, \"GPU\")"


class DeviceUnavailableError(RuntimeError):
    """The requested device cannot be used by this torch build / machine (the message says why and what to do)."""


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


def gpu_evidence(dev_dir: str | Path = "/dev") -> str | None:
    """What shows an NVIDIA GPU on this machine whatever torch can do (a /dev/nvidiaN node, nvidia-smi), or None."""
    nodes = sorted(Path(dev_dir).glob("nvidia[0-9]*"))
    if nodes:
        return str(nodes[0])
    return shutil.which("nvidia-smi")


def _torch_cuda_reason() -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no usable GPU: check the driver "
            "(nvidia-smi) and CUDA_VISIBLE_DEVICES")


def unused_gpu_warning(dev_dir: str | Path = "/dev") -> str | None:
    """A warning when a GPU is visible on this machine but torch cannot use it (None otherwise, or when
    CUDA_VISIBLE_DEVICES hides every GPU on purpose)."""
    if torch.cuda.is_available() or os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return None
    evidence = gpu_evidence(dev_dir)
    if evidence is None:
        return None
    return (f"a GPU is visible on this machine ({evidence}) but {_torch_cuda_reason()}: running on CPU. "
            f"To train on the GPU, {INSTALL_HINT}")


def resolve_device(device: str = "auto", local_rank: int = 0, dev_dir: str | Path = "/dev") -> torch.device:
    """"auto" -> cuda:LOCAL_RANK when torch can use a GPU, else cpu (with a logged warning when a GPU is visible
    but unusable); "cuda" -> cuda:LOCAL_RANK, or DeviceUnavailableError saying why it cannot be used."""
    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        else:
            warning = unused_gpu_warning(dev_dir)
            if warning:
                log.warning(warning)
            device = "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"device {device!r} was asked for but {_torch_cuda_reason()}; "
                                         f"use device 'cpu' or 'auto', or {INSTALL_HINT}")
        index = torch.device(device).index
        index = local_rank if index is None else index
        if index >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"device cuda:{index} was asked for (LOCAL_RANK {local_rank}) but only "
                                         f"{torch.cuda.device_count()} GPU(s) are visible: launch at most that many "
                                         "processes per node (nproc_per_node)")
        return torch.device("cuda", index)
    return torch.device(device)


def device_info(requested: str, resolved: torch.device, dev_dir: str | Path = "/dev") -> dict:
    """What a run records about its device: requested, used, torch build, and the unused-GPU warning if any."""
    info = {"requested": requested, "device": str(resolved), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda}
    if resolved.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(resolved)
    elif requested == "auto":
        warning = unused_gpu_warning(dev_dir)
        if warning:
            info["warning"] = warning
    return info


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


def sync_running_stats(model: torch.nn.Module, ctx: DistContext) -> None:
    """Average every `running_mean` / `running_var` buffer (STAR's partitioned norm, batch norms) over ranks, in
    place, with one all_reduce: under DDP each rank updates them from its own shard only. No-op on one process."""
    if not ctx.ddp:
        return
    inner = getattr(model, "module", model)
    buffers = [b for name, b in inner.named_buffers() if name.rsplit(".", 1)[-1] in ("running_mean", "running_var")]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ctx.world
    offset = 0
    for b in buffers:
        b.copy_(flat[offset:offset + b.numel()].view_as(b))
        offset += b.numel()


def barrier(ctx: DistContext) -> None:
    if ctx.ddp:
        dist.barrier()
