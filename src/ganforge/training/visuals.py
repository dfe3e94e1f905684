"""Per-tick pictures: an image grid (PNG) or a 2-D scatter against the data (PNG)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def image_grid(images: torch.Tensor, cols: int | None = None, pad: int = 2) -> Image.Image:
    """uint8 [N, C, H, W] -> one PIL image with the samples in rows (C = 1, 3 or 4)."""
    n, c, h, w = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    arr = images.permute(0, 2, 3, 1).cpu().numpy()
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = arr[i]
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode=mode)


def save_image_grid(images: torch.Tensor, path: Path, scale: int = 0) -> None:
    img = image_grid(images)
    if scale == 0:  # small images are upscaled (nearest) so the grid is legible
        scale = max(1, 256 // max(images.shape[2], 1) // 2)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)


def save_scatter(samples: np.ndarray, real: np.ndarray | None, path: Path, title: str = "") -> None:
    """Scatter of the first two coordinates of samples (blue) over real data (grey)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    if real is not None:
        ax.scatter(real[:, 0], real[:, 1], s=2, c="0.75", label="data", linewidths=0)
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c="tab:blue", label="G", linewidths=0)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper right", fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
