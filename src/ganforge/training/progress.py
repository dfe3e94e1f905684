"""Progress display: a rich bar on a terminal, one plain line per tick otherwise. Updated per tick only."""
from __future__ import annotations

import sys


def _fmt(stats: dict) -> str:
    keys = [("img/s", "img_per_s", "{:.0f}"), ("D", "loss_d", "{:.3f}"), ("G", "loss_g", "{:.3f}"),
            ("D(x)", "d_real", "{:.2f}"), ("D(G(z))", "d_fake", "{:.2f}"),
            ("l(x)", "d_real_logit", "{:.2f}"), ("l(G(z))", "d_fake_logit", "{:.2f}"), ("noise", "noise_std", "{:.3f}")]
    parts = []
    for label, k, f in keys:
        if k in stats and not (k.endswith("logit") and "d_real" in stats):
            parts.append(f"{label} {f.format(stats[k])}")
    for name, vals in stats.get("metrics", {}).items():
        for k, v in vals.items():
            parts.append(f"{k} {v:.4g}")
    return "  ".join(parts)


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

    def tick(self, kimg: float, stats: dict) -> None:
        if not self.enabled:
            return
        if self.rich is not None:
            self.rich.update(self.task, completed=kimg, stats=_fmt(stats))
        else:
            print(f"kimg {kimg:8.2f}/{self.total:g}  {_fmt(stats)}", file=sys.stderr, flush=True)

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
