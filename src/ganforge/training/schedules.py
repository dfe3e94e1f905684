"""Noise annealing: the std of instance noise as a function of images seen (Sonderby et al. 2016;
Arjovsky & Bottou 2017). Every schedule starts at `std` and, except `constant`, reaches 0 at `kimg`."""
from __future__ import annotations

import math


def noise_std(schedule: str, std: float, kimg: float, cur_nimg: int) -> float:
    if std <= 0:
        return 0.0
    if schedule == "constant":
        return std
    t = cur_nimg / (kimg * 1000.0)
    if t >= 1.0:
        return 0.0
    if schedule == "linear":
        return std * (1.0 - t)
    if schedule == "cosine":
        return std * 0.5 * (1.0 + math.cos(math.pi * t))
    if schedule == "exponential":
        # 100x decay over the window (std * 0.01^t), then 0: a smooth "temperature" that ends exactly at zero
        return std * 0.01 ** t
    raise AssertionError(schedule)


def lr_multiplier(schedule: str, kimg: float, final: float, cur_nimg: int) -> float:
    """Learning-rate factor: 1 -> `final` over `kimg` thousand images (linear or cosine), then `final`."""
    if schedule == "constant":
        return 1.0
    t = min(cur_nimg / (kimg * 1000.0), 1.0)
    if schedule == "linear":
        return 1.0 + (final - 1.0) * t
    if schedule == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))
    raise AssertionError(schedule)
