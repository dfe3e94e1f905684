"""Progress display: a rich bar on a terminal, one plain line per tick otherwise. Updated per tick only.
The statistics are shown by name (ganforge.utils.statinfo)."""
from __future__ import annotations

import sys

from ..utils.statinfo import progress_text


class Progress:
    def __init__(self, total_kimg: float, start_kimg: float, enabled: bool = True):
        self.enabled = enabled
        self.total = total_kimg
        self.rich = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self.rich = RichProgress(TextColumn("[bold]{task.completed:.1f}/{task.total:.1f} kimg"), BarColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False)
            self.task = self.rich.add_task("train", total=total_kimg, completed=start_kimg, stats="starting")
            self.rich.start()

    def tick(self, kimg: float, record: dict) -> None:
        if not self.enabled:
            return
        if self.rich is not None:
            self.rich.update(self.task, completed=kimg, stats=progress_text(record))
        else:
            print(f"kimg {kimg:8.2f}/{self.total:g}  {progress_text(record)}", file=sys.stderr, flush=True)

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
