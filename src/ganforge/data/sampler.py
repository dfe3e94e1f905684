"""Minibatches through a permutation: no DataLoader, no host synchronisation."""
from __future__ import annotations

import torch

from ..errors import GanforgeError
from ..utils import distributed as dist


class DeviceSampler:
    """Minibatches of `x` in a random order that is reshuffled every epoch (the remainder is dropped).

    Data that fits lives on the training device and is indexed there by a device-side permutation. Larger data
    (train.data_device=host, or auto when it would take over a quarter of the free GPU memory) stays in host
    memory (pinned for CUDA): the permutation is then drawn on the CPU (`gen` is a CPU generator) and each
    minibatch is copied to the device as it is needed. `batch` is the global batch; each process keeps its own
    slice of it (utils.distributed.local_slice). `state_dict` holds the order and position (and the generator
    when it is the sampler's own), so a resumed run sees the same minibatches.
    """

    def __init__(self, x: torch.Tensor, batch: int, gen: torch.Generator, device: torch.device | None = None,
                 channels_last: bool = False, own_gen: bool = False, labels: torch.Tensor | None = None):
        if batch > x.shape[0]:
            raise GanforgeError(f"train.batch ({batch}) is larger than the dataset ({x.shape[0]} items); "
                                "lower train.batch or use more data")
        self.x, self.batch, self.gen = x, batch, gen
        self.device = torch.device(device) if device is not None else x.device
        self.streaming = self.x.device != self.device
        self.channels_last = channels_last and x.ndim == 4
        self.own_gen = own_gen  # a generator of its own (host data): its state is part of the data state
        self.labels = None if labels is None else labels.to(x.device)
        self.perm = torch.randperm(x.shape[0], generator=gen, device=x.device)
        self.pos = 0

    def _indices(self) -> torch.Tensor:
        if self.pos + self.batch > self.perm.shape[0]:  # new epoch; the remainder is dropped
            self.perm = torch.randperm(self.x.shape[0], generator=self.gen, device=self.x.device)
            self.pos = 0
        idx = dist.local_slice(self.perm[self.pos: self.pos + self.batch])
        self.pos += self.batch
        return idx

    def next(self) -> torch.Tensor:
        """This process's slice of the next minibatch of items."""
        return self._move(self.x[self._indices()])

    def next_labeled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next minibatch and its class labels (int64 [b])."""
        assert self.labels is not None, "a labelled sampler"
        idx = self._indices()
        return self._move(self.x[idx]), self.labels[idx].to(self.device, non_blocking=True)

    def _move(self, out: torch.Tensor) -> torch.Tensor:
        if self.streaming:
            out = out.to(self.device, non_blocking=True)
            if self.channels_last:
                out = out.contiguous(memory_format=torch.channels_last)
        return out

    def state_dict(self) -> dict:
        s = {"perm": self.perm.cpu(), "pos": self.pos}
        if self.own_gen:
            s["gen"] = self.gen.get_state()
        return s

    def load_state_dict(self, s: dict) -> None:
        perm, pos = s["perm"], int(s["pos"])
        if perm.ndim != 1 or perm.shape[0] != self.x.shape[0]:
            raise GanforgeError(f"the checkpoint's data order covers {perm.shape[0]} items but the dataset now has "
                                f"{self.x.shape[0]}: the data changed since the checkpoint was written; restore "
                                "the data, or start a new run on the new data")
        self.perm, self.pos = perm.to(self.x.device), pos
        if self.own_gen and "gen" in s:
            self.gen.set_state(s["gen"])
