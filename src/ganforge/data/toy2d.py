"""2-D mixtures of Gaussians exactly as PacGAN defines them (Lin et al. 2018, fjxmlzn/PacGAN config.py).

ring: 8 modes (cos 2pi k/8, sin 2pi k/8), radius 1, std 0.01.  grid: 25 modes at {-4,-2,0,2,4}^2, std 0.05.
A training set of `data.n` points (PacGAN: 100,000) is drawn once with `data.seed`, uniform over modes.
"""
from __future__ import annotations

import functools
import math

import torch

from .base import DATASETS, Data

TOY_SETS = {
    "ring": dict(std=0.01, centers=[(math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8)]),
    "grid": dict(std=0.05, centers=[(float(i), float(j)) for i in (-4, -2, 0, 2, 4) for j in (-4, -2, 0, 2, 4)]),
}


def toy_modes(name: str) -> tuple[torch.Tensor, float]:
    """(centers [K, 2] float64, std) of a toy set."""
    spec = TOY_SETS[name]
    return torch.tensor(spec["centers"], dtype=torch.float64), float(spec["std"])


def _make_toy(name: str, cfg) -> Data:
    centers, std = toy_modes(name)
    g = torch.Generator().manual_seed(cfg.seed)
    k = torch.randint(len(centers), (cfg.n,), generator=g)
    x = centers[k] + std * torch.randn(cfg.n, 2, generator=g, dtype=torch.float64)
    return Data(x=x.float(), kind="vector", name=name, labels=k,
                info=dict(protocol="PacGAN (Lin et al. 2018)", modes=len(centers), std=std, n=cfg.n, seed=cfg.seed))


_DOCS = {"ring": "PacGAN ring: 8 Gaussian modes on the unit circle, std 0.01 (2-D vectors), built in",
         "grid": "PacGAN grid: 25 Gaussian modes at {-4,..,4}^2, std 0.05 (2-D vectors), built in"}
for _name in TOY_SETS:
    DATASETS.register(_name, doc=_DOCS[_name])(functools.partial(_make_toy, _name))
