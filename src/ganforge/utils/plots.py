"""Plots as PNG: matplotlib's Agg canvas through `Figure` objects (no pyplot state, safe in threads and tests)."""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from .files import atomic_write

Series = tuple[str, list[float], str, str]   # (label, y values, colour, line style)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def scatter_png(samples: np.ndarray, real: np.ndarray | None = None, title: str = "") -> bytes:
    """Scatter of the first two coordinates of samples (blue) over real data (grey), as PNG bytes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.5), dpi=100)
    ax = fig.add_subplot()
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75", label="data", linewidths=0)
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", label="G", linewidths=0)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    return _png(fig)


def save_scatter(samples: np.ndarray, real: np.ndarray | None, path: str | os.PathLike, title: str = "") -> Path:
    return atomic_write(path, scatter_png(samples, real, title))


def line_plot_png(x: list[float], series: list[Series], title: str, ylabel: str,
                  marks: list[tuple[float, str]] = (), ylim: tuple[float, float] | None = None,
                  ymin0: bool = False) -> bytes:
    """A line plot as PNG bytes; `marks` are vertical lines (kimg, "resume" | "diverged")."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.2), dpi=144)
    ax = fig.add_subplot()
    few = len(x) <= 30
    for label, y, color, ls in series:
        ax.plot(x, y, ls, color=color, label=label, lw=1.4, marker="o" if few else None, ms=3)
    for k, kind in marks:
        ax.axvline(k, color="#d62728" if kind == "diverged" else "#999999", ls="--" if kind == "diverged" else ":",
                   lw=1)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("kimg", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e5e5", lw=0.6)
    if ylim:
        ax.set_ylim(*ylim)
    elif ymin0 and any(math.isfinite(v) for _, y, _, _ in series for v in y):
        ax.set_ylim(bottom=0)
    if len(series) > 1 or series[0][0] != ylabel:
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return _png(fig)
