"""Multi-process data parallelism with torch.distributed, launched by torchrun. One code path: a single
process is world size 1 and every helper here is then a no-op.

Design: all ranks share one RNG stream, draw the *global* minibatch (indices, latents, noise) and each keeps
its own slice. So every rank trains on its own shard of each batch with its own noise, gradients are averaged
with all_reduce (as StyleGAN2-ADA does, which also keeps double-backward penalties out of DDP's hooks), and a
run on W processes follows the same trajectory as one process with the same global batch. Checkpoints hold
one RNG state, so a run resumes under any world size. Rank 0 alone writes files.
"""
from __future__ import annotations

import faulthandler
import os

import torch
import torch.distributed as td
from torch import nn


def init() -> None:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Backend: NCCL for CUDA tensors and gloo for CPU ones when CUDA is there, else gloo; the environment
    variable GANFORGE_DIST_BACKEND overrides it (e.g. `gloo` to test on CPU on a GPU machine).
    """
    if td.is_available() and not td.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = os.environ.get("GANFORGE_DIST_BACKEND") or ("cpu:gloo,cuda:nccl" if torch.cuda.is_available()
                                                              else "gloo")
        if torch.cuda.is_available():  # before any collective: NCCL uses the current device (one GPU per rank)
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        td.init_process_group(backend)
        if not faulthandler.is_enabled():  # a rank killed by a signal prints where every thread was (torchrun
            faulthandler.enable()          # itself reports only the signal)


def active() -> bool:
    return td.is_available() and td.is_initialized() and td.get_world_size() > 1


def rank() -> int:
    return td.get_rank() if active() else 0


def world_size() -> int:
    return td.get_world_size() if active() else 1


def is_main() -> bool:
    return rank() == 0


def device_for_rank(device: torch.device) -> torch.device:
    if device.type == "cuda" and active():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return device


def local_slice(x: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous slice of a global batch [world * b, ...] -> [b, ...]."""
    if not active():
        return x
    b = x.shape[0] // world_size()
    return x[rank() * b: (rank() + 1) * b]


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """BatchNorm layers -> SyncBatchNorm (statistics over the global batch); torch supports it on GPUs only."""
    return nn.SyncBatchNorm.convert_sync_batchnorm(module) if active() else module


def average_grads(module: nn.Module) -> None:
    """All-reduce and average the gradients of `module` over ranks (one flat buffer, one collective)."""
    if not active():
        return
    params = [p for p in module.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    td.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for p in params:
        n = p.grad.numel()
        p.grad.copy_(flat[offset: offset + n].view_as(p.grad))
        offset += n


def all_reduce_sum(x: torch.Tensor) -> None:
    if active():
        td.all_reduce(x)


def all_reduce_max(x: torch.Tensor) -> None:
    if active():
        td.all_reduce(x, op=td.ReduceOp.MAX)


def any_true(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any (so all ranks stop at the same step)."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(obj):
    """Rank 0's Python object, on every rank."""
    if not active():
        return obj
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        td.barrier()


def cleanup() -> None:
    if active():
        td.destroy_process_group()
