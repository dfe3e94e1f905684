"""scikit-learn's 8x8 handwritten digits (1,797 images, 16 grey levels), shipped with scikit-learn.

`data.resolution` > 8 upsamples with the loaders' one resampling filter (ganforge.utils.images.resize).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError
from ..utils import images
from .base import DATASETS, Data


@DATASETS.register("digits", doc="scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), built in")
def digits(cfg) -> Data:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.round(d.images * (255 / 16)).astype(np.uint8)[:, None]  # [N, 1, 8, 8], 16 grey levels -> 0..255
    labels = torch.from_numpy(d.target).long()
    res = cfg.resolution or 8
    if cfg.width and cfg.width != res:
        raise GanforgeError("data.width: the digits set is square; set only data.resolution")
    if res < 8:
        raise GanforgeError(f"data.resolution: digits are 8x8; choose 8 or more, got {res}")
    if cfg.max_items:
        x, labels = x[: cfg.max_items], labels[: cfg.max_items]
    x = images.resize(x, (res, res))
    if cfg.channels not in (0, 1):
        if cfg.channels != 3:
            raise GanforgeError(f"data.channels: digits are grey; choose 1 or 3, got {cfg.channels}")
        x = np.repeat(x, 3, axis=1)
    return Data(x=torch.from_numpy(np.ascontiguousarray(x)), kind="image", name="digits", labels=labels,
                class_names=[str(i) for i in range(10)],
                info=dict(source="sklearn.datasets.load_digits", resolution=res,
                          preprocessing=[f"resized to {res}x{res} ({images.RESAMPLE_NAME})"] if res != 8 else []))
