"""Training statistics by name, accumulated on the device: no host synchronisation inside a step.

    stats.add("loss_d", loss)     # a 0-d tensor, detached here
    record = stats.read()         # once per tick: one device -> host copy, means over ranks and steps

Every rank must add the same names the same number of times (they run the same code); the sums and counts
are all-reduced together in one collective.
"""
from __future__ import annotations

import torch

from . import distributed as dist


class Stats:
    def __init__(self) -> None:
        self._sum: dict[str, torch.Tensor] = {}
        self._n: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        v = value.detach().float()
        if name in self._sum:
            self._sum[name] += v
        else:
            self._sum[name] = v.clone()
        self._n[name] = self._n.get(name, 0) + 1

    def names(self) -> list[str]:
        return sorted(self._sum)

    def read(self) -> dict[str, float]:
        """Means since the last read (over steps and ranks), then reset."""
        names = self.names()
        if not names:
            return {}
        sums = torch.stack([self._sum[k] for k in names]).double()
        counts = torch.tensor([self._n[k] for k in names], dtype=torch.float64, device=sums.device)
        both = torch.cat([sums, counts])
        dist.all_reduce_sum(both)
        sums, counts = both.cpu().split(len(names))
        self._sum.clear()
        self._n.clear()
        return {k: float(s / n) for k, s, n in zip(names, sums.tolist(), counts.tolist())}
