"""Minibatches through a permutation: no DataLoader, no host synchronisation; data on disk is read per minibatch
(DiskSampler)."""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..errors import GanforgeError
from ..utils import distributed as dist
from .disk import rows_reader


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

    def close(self) -> None:
        """Release what the sampler holds (DiskSampler: its file and threads)."""

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


class DiskSampler(DeviceSampler):
    """Images on disk (data/disk.py, `data.storage` disk): the order, position and generator of a host-data
    DeviceSampler (so resume is exact either way), but each minibatch's rows are read from the file by positioned
    reads, PREFETCH minibatches ahead on a small thread pool. Memory: PREFETCH + 1 minibatches."""

    PREFETCH = 4

    def __init__(self, x: torch.Tensor, path: str, batch: int, gen: torch.Generator, device: torch.device,
                 channels_last: bool = False, labels: torch.Tensor | None = None):
        super().__init__(x, batch, gen, device, channels_last=channels_last, own_gen=True, labels=labels)
        self.streaming = True
        self.row_shape = tuple(x.shape[1:])
        self.read = rows_reader(path, int(np.prod(self.row_shape)))
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ganforge-data")
        self.epoch = 0          # bumped with every new order: prefetched reads of an old order are dropped
        self.pending: deque = deque()  # (epoch, pos, future of the rows)

    def _indices(self) -> torch.Tensor:
        if self.pos + self.batch > self.perm.shape[0]:  # new epoch; the remainder is dropped
            self.perm = torch.randperm(self.x.shape[0], generator=self.gen, device=self.x.device)
            self.pos = 0
            self.epoch += 1
        idx = dist.local_slice(self.perm[self.pos: self.pos + self.batch])
        self.pos += self.batch
        return idx

    def _rows(self, idx: torch.Tensor) -> torch.Tensor:
        """The minibatch at the position just taken: prefetched if it was, read now otherwise; then prefetch on."""
        key = (self.epoch, self.pos - self.batch)
        while self.pending and self.pending[0][:2] != key:
            self.pending.popleft()[2].cancel()  # stale: an order that no longer holds
        rows = self.pending.popleft()[2].result() if self.pending else self.read(idx.numpy())
        ahead = self.pending[-1][1] + self.batch if self.pending else self.pos
        while len(self.pending) < self.PREFETCH and ahead + self.batch <= self.perm.shape[0]:
            nxt = dist.local_slice(self.perm[ahead: ahead + self.batch]).numpy()
            self.pending.append((self.epoch, ahead, self.pool.submit(self.read, nxt)))
            ahead += self.batch
        return torch.from_numpy(rows).view(-1, *self.row_shape)

    def next(self) -> torch.Tensor:
        return self._move(self._rows(self._indices()))

    def next_labeled(self) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.labels is not None, "a labelled sampler"
        idx = self._indices()
        return self._move(self._rows(idx)), self.labels[idx].to(self.device, non_blocking=True)

    def load_state_dict(self, s: dict) -> None:
        super().load_state_dict(s)
        self.epoch += 1  # whatever was prefetched belongs to the order before
        self.pending.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.read.close()
