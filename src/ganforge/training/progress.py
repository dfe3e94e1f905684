"""Progress display: a rich bar on a terminal, one plain line per tick otherwise. The statistics are shown by
name (ganforge.utils.statinfo).

On a terminal the bar also moves between ticks (`live`, at most every LIVE_EVERY_S seconds): images seen, the
speed since the last tick and the time left, all from host-side counters, so the step never waits for the
device. The bar follows the schedule clock (training.budget), so under --minutes it ends when the budget does.
"""
from __future__ import annotations

import sys
import time

from ..utils.statinfo import progress_text

LIVE_EVERY_S = 1.0


def _clock(seconds: float) -> str:
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    def __init__(self, total_kimg: float, start_kimg: float, enabled: bool = True):
        self.enabled = enabled
        self.total = total_kimg
        self.rich = None
        self.last_live = 0.0
        self.last_text = "starting"
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn

            self.rich = RichProgress(TextColumn("[bold]{task.fields[kimg]}"), BarColumn(),
                                     TextColumn("{task.fields[live]}"), TextColumn("{task.fields[stats]}"),
                                     transient=False)
            self.task = self.rich.add_task("train", total=total_kimg, completed=start_kimg, stats="starting",
                                           kimg=f"{start_kimg:.1f}/{total_kimg:g} kimg", live="")
            self.rich.start()

    def live(self, kimg: float, sched_kimg: float, img_per_s: float, left_s: float | None) -> None:
        """Between ticks: kimg seen, img/s, time left; the last tick's statistics stay on the line."""
        if self.rich is None or time.time() - self.last_live < LIVE_EVERY_S:
            return
        self.last_live = time.time()
        left = "" if left_s is None else f"  {_clock(left_s)} left"
        self.rich.update(self.task, completed=min(sched_kimg, self.total), kimg=f"{kimg:.1f}/{self.total:g} kimg",
                         live=f"{img_per_s:,.0f} img/s{left}")

    def tick(self, kimg: float, record: dict, sched_kimg: float | None = None) -> None:
        if not self.enabled:
            return
        self.last_text = progress_text(record)
        if self.rich is not None:
            self.rich.update(self.task, completed=min(kimg if sched_kimg is None else sched_kimg, self.total),
                             kimg=f"{kimg:.1f}/{self.total:g} kimg", live="", stats=self.last_text)
        else:
            print(f"kimg {kimg:8.2f}/{self.total:g}  {self.last_text}", file=sys.stderr, flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self.rich is not None:
            self.rich.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
