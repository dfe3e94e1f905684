"""Random numbers for data-parallel training: every rank draws from one shared stream for the *global* batch
and keeps its own slice, so W processes follow the trajectory of one process with the same global batch
(see utils.distributed)."""
from __future__ import annotations

import torch

from . import distributed as dist


def randn_local(shape: tuple[int, ...], gen: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    """N(0, 1) noise for this rank: drawn for the global batch from the shared stream, then sliced."""
    g = (shape[0] * dist.world_size(),) + tuple(shape[1:])
    return dist.local_slice(torch.randn(g, generator=gen, device=device, dtype=dtype))


def rand_local(shape: tuple[int, ...], gen: torch.Generator | None, device, dtype=torch.float32) -> torch.Tensor:
    """U[0, 1) for this rank, drawn like randn_local."""
    g = (shape[0] * dist.world_size(),) + tuple(shape[1:])
    return dist.local_slice(torch.rand(g, generator=gen, device=device, dtype=dtype))


def cpu_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with `seed`: results that must not depend on the device draw here."""
    return torch.Generator().manual_seed(int(seed))
