"""Where a tick's record goes: RUN_DIR/log.jsonl always, TensorBoard event files in RUN_DIR when the
`tensorboard` package is installed (and train.tensorboard is on), so `tensorboard --logdir runs/` shows
every run's statistics, metric values and sample grids. Rank 0 alone writes.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np

from ..utils.files import append_jsonl
from ..utils.statinfo import info, statistics_of


class JsonlSink:
    """One JSON object per line: ticks, resumes, divergences (the report reads this)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "log.jsonl"

    def event(self, record: dict) -> None:
        append_jsonl(self.path, record)

    def tick(self, record: dict, grid: np.ndarray | None) -> None:
        append_jsonl(self.path, record)

    def close(self) -> None:
        pass


class TensorBoardSink:
    """Scalars (statistics under train/, metric values under metrics/), the sample grid as an image; the
    step is the number of real images shown (nimg). On resume, events past the resumed point are purged."""

    def __init__(self, run_dir: Path, start_nimg: int):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: events at steps >= it, from a branch this resume replaces, are hidden by TensorBoard
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=start_nimg + 1 if start_nimg else None,
                                    flush_secs=3600)

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("tensorboard") is not None

    def event(self, record: dict) -> None:
        pass

    def tick(self, record: dict, grid: np.ndarray | None) -> None:
        step = int(record["nimg"])
        for k in statistics_of(record):
            v = float(record[k])
            if math.isfinite(v):
                group = "speed" if info(k).group in ("speed",) else "train"
                self.writer.add_scalar(f"{group}/{k}", v, step)
        for metric, vals in (record.get("metrics") or {}).items():
            for k, v in (vals.items() if isinstance(vals, dict) else ()):
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self.writer.add_scalar(f"metrics/{metric}/{k}", float(v), step)
        if grid is not None:
            self.writer.add_image("samples", grid, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_sinks(run_dir: Path, tensorboard: bool, start_nimg: int) -> list:
    sinks: list = [JsonlSink(run_dir)]
    if tensorboard and TensorBoardSink.available():
        sinks.append(TensorBoardSink(run_dir, start_nimg))
    return sinks
