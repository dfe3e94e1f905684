"""Preprocessed images on disk, for data larger than memory (`data.storage`).

Format: a directory holding `images.u8` (the uint8 rows [N, C, H, W], C-order, one after another), `labels.npy`
(int64 [N], or empty) and `meta.json` (shape, class names, provenance), written LAST: a directory without it is
an unfinished write and is rebuilt. It is written once, row by row, with a progress bar; peak memory while
writing is one chunk of decoded images.

Reading: `Data.x` is a copy-on-write memory map of `images.u8` (so every consumer that indexes a few items, such
as the data fingerprint or a metric's real sample, works unchanged), but training never maps the whole file: the
`DiskSampler` (data/sampler.py) reads each minibatch's rows with positioned reads (os.pread) from a small pool of
threads, a few batches ahead. The file is read through the page cache, which the kernel reclaims under
pressure, so the process's own memory stays at a few minibatches whatever the size of the data.
Threads, not processes: after preprocessing a row is a plain read with no decoding left to do, and os.pread
releases the GIL.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import GanforgeError

IMAGES, LABELS, META = "images.u8", "labels.npy", "meta.json"


def physical_memory_bytes() -> int:
    """Installed memory (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def memory_limit_bytes(limit_mb: int) -> int:
    """data.memory_mb (0 = a quarter of the installed memory): data larger than this is kept on disk."""
    if limit_mb > 0:
        return limit_mb * 2**20
    phys = physical_memory_bytes()
    return phys // 4 if phys else 4 * 2**30


class DiskWriter:
    """Write rows [C, H, W] of uint8 one after another into `directory` (a fresh temporary one, renamed into
    place by `finish`)."""

    def __init__(self, directory: Path, shape: tuple[int, int, int], total: int, what: str):
        self.final = directory
        self.tmp = directory.with_name(directory.name + f".tmp-{os.getpid()}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True)
        self.shape, self.n = shape, 0
        self.f = open(self.tmp / IMAGES, "wb")
        self.progress = _bar(total, what)

    def add(self, row: np.ndarray) -> None:
        assert row.dtype == np.uint8 and row.shape == self.shape, (row.dtype, row.shape, self.shape)
        self.f.write(np.ascontiguousarray(row).tobytes())
        self.n += 1

    def advance(self, k: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=k)

    def finish(self, labels: np.ndarray, meta: dict) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        np.save(self.tmp / LABELS, labels.astype(np.int64))
        meta = dict(meta, n=self.n, shape=list(self.shape))
        (self.tmp / META).write_text(json.dumps(meta))  # last: its presence marks a complete directory
        shutil.rmtree(self.final, ignore_errors=True)
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        if self.progress is not None:
            self.progress.stop()
        self.f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _bar(total: int, what: str):
    if not sys.stderr.isatty() or total < 1000:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    p = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    p.task = p.add_task(what, total=total)
    p.start()
    return p


def read_disk(directory: Path) -> tuple[torch.Tensor, np.ndarray, dict] | None:
    """(images as a copy-on-write memory map [N, C, H, W], labels, meta), or None when there is no complete copy
    (then it is rebuilt; a damaged one is never trusted)."""
    meta_file = directory / META
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        n, shape = int(meta["n"]), tuple(int(v) for v in meta["shape"])
        path = directory / IMAGES
        if path.stat().st_size != n * int(np.prod(shape)) or n < 1:
            raise ValueError(f"{path.name} holds {path.stat().st_size} bytes, not {n} rows of {shape}")
        labels = np.load(directory / LABELS, allow_pickle=False)
        x = np.memmap(path, np.uint8, mode="c", shape=(n, *shape))  # copy-on-write: torch wants writable
        return torch.from_numpy(x), labels, meta
    except (OSError, ValueError, KeyError, TypeError) as e:
        import warnings

        warnings.warn(f"ignoring the damaged preprocessed data in {directory} ({e}); rebuilding it", stacklevel=3)
        return None


def rows_reader(path: str, row_bytes: int):
    """A function idx (int64 [b]) -> uint8 bytes of those rows, by positioned reads (sorted, then put back)."""
    fd = os.open(path, os.O_RDONLY)

    def read(idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), row_bytes), np.uint8)
        for j, i in enumerate(idx.tolist()):
            got = os.preadv(fd, [memoryview(out[j])], i * row_bytes)
            if got != row_bytes:
                raise GanforgeError(f"{path}: short read at row {i} ({got} of {row_bytes} bytes): the "
                                    "preprocessed data changed or the disk failed; delete it to rebuild it")
        return out

    read.close = lambda: os.close(fd)  # type: ignore[attr-defined]
    return read
