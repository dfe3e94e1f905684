"""PacGAN toy metrics for the 2-D ring and grid (Lin et al. 2018, fjxmlzn/PacGAN `MetricLogger`).

Each sample goes to the mode j minimising d_j = sqrt(sum((x - mu_j)^2 / sigma^2)) (distance in std units);
it is *high quality* (HQ) when min_j d_j < 3 (strict, as the PacGAN code).

- modes      = number of modes with >= 1 HQ sample.
- hq         = (number of HQ samples) / N, a fraction in [0, 1] (the paper prints it as a percentage).
- reverse_kl = KL(p_hist || Uniform(K)) = log K - H(p_hist), in nats, where p_hist is the histogram over modes
  of the **HQ samples only**. That is the histogram PacGAN's `MetricLogger` builds (`detail_of_coverage` only counts
  points with `min_dis < dis_thre`) and from which it logs the entropy and JSD to uniform; the paper's reverse-KL
  column is presumably log K minus that entropy (reference/benchmarks.md §1.1 marks the formula [UNVERIFIED]).
  With no HQ sample the histogram is empty and reverse_kl is NaN (modes = 0 and hq = 0 already say so).

Non-finite samples (a diverged G) are never HQ but count in N.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..data.toy2d import TOY_SETS, toy_modes
from ..errors import GanforgeError

HQ_THRESHOLD = 3.0  # std units (PacGAN `dis_thre=3`)


def _as_samples(samples: torch.Tensor | np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(samples) if not isinstance(samples, torch.Tensor) else samples)
    if x.ndim != 2 or x.shape[1] != 2:
        raise GanforgeError(f"toy metrics need samples of shape [N, 2], got {tuple(x.shape)}")
    return x.detach().to("cpu", torch.float64)


def toy_assign(samples: torch.Tensor | np.ndarray, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(nearest mode index int64 [N], HQ mask bool [N]) of each sample for toy set `name` ("ring" | "grid")."""
    if name not in TOY_SETS:
        raise GanforgeError(f"toy metrics are defined for {', '.join(sorted(TOY_SETS))}, not {name!r}")
    x = _as_samples(samples)                                       # [N, 2] float64
    centers, std = toy_modes(name)                                 # [K, 2] float64
    idx = torch.empty(len(x), dtype=torch.int64)
    hq = torch.empty(len(x), dtype=torch.bool)
    for s in range(0, len(x), 65536):                              # chunks keep the [n, K, 2] tensor small
        d = ((x[s:s + 65536, None, :] - centers[None]) ** 2 / std**2).sum(-1).sqrt()  # [n, K], std units
        d = torch.nan_to_num(d, nan=math.inf)
        dmin, j = d.min(dim=1)                                     # first minimum on ties, as PacGAN's strict `<`
        idx[s:s + 65536], hq[s:s + 65536] = j, dmin < HQ_THRESHOLD
    return idx, hq


def toy_metrics(samples: torch.Tensor | np.ndarray, name: str) -> dict:
    """PacGAN metrics of generated samples [N, 2]: dict(modes=int, hq=float in [0, 1], reverse_kl=float, n=int)."""
    idx, hq = toy_assign(samples, name)
    k = len(TOY_SETS[name]["centers"])
    counts = torch.bincount(idx[hq], minlength=k).double()         # [K] histogram of HQ samples over modes
    n_hq = float(counts.sum())
    if n_hq > 0:
        p = counts / n_hq
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        reverse_kl = max(math.log(k) - entropy, 0.0)               # clamp -1e-16 rounding noise at uniform
    else:
        reverse_kl = math.nan
    n = len(idx)
    return dict(modes=int((counts > 0).sum()), hq=n_hq / n if n else 0.0, reverse_kl=reverse_kl, n=n)
