"""scikit-learn's 8x8 handwritten digits (1,797 images, 16 grey levels), shipped with scikit-learn.

`data.resolution` > 8 upsamples with bilinear interpolation (antialiased) so that samples look smoother.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import GanforgeError
from .base import DATASETS, Data


@DATASETS.register("digits")
def digits(cfg) -> Data:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images).float().div_(16.0).unsqueeze(1)  # [N, 1, 8, 8] in [0, 1]
    labels = torch.from_numpy(d.target).long()
    res = cfg.resolution or 8
    if cfg.width and cfg.width != res:
        raise GanforgeError("data.width: the digits set is square; set only data.resolution")
    if res != 8:
        if res < 8:
            raise GanforgeError(f"data.resolution: digits are 8x8; choose 8 or more, got {res}")
        x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
    x = (x * 255).round().clamp(0, 255).to(torch.uint8)
    if cfg.channels not in (0, 1):
        if cfg.channels != 3:
            raise GanforgeError(f"data.channels: digits are grey; choose 1 or 3, got {cfg.channels}")
        x = x.repeat(1, 3, 1, 1)
    if cfg.max_items:
        x, labels = x[: cfg.max_items], labels[: cfg.max_items]
    return Data(x=x.contiguous(), kind="image", name="digits", labels=labels,
                class_names=[str(i) for i in range(10)],
                info=dict(source="sklearn.datasets.load_digits", resolution=res))
