"""Manifold metrics on any feature set (reference/metrics.md §4.1, §4.2).

- Improved precision / recall (Kynkaanniemi et al. 2019, kynkaat/improved-precision-and-recall-metric): k = 3;
  the radius of a sample is the distance to its k-th nearest neighbour in its own set excluding itself (the
  (k+1)-th smallest distance, self included); membership is **inclusive** (`<=`).
  precision = fraction of fake samples inside the real manifold; recall = fraction of real samples inside the fake one.
- Density / coverage (Naeem et al. 2020, clovaai/generative-evaluation-prdc `compute_prdc`): k = 5, the same radii,
  membership **strict** (`<`). It also returns its own precision / recall (strict, k = 5), as `compute_prdc` does.

Euclidean distances in float64 (mm-based cdist, exact for small integer coordinates), in row blocks so memory
stays bounded. With real X_i (radius r_i), fake Y_j (radius s_j), M fake samples:
density = 1/(kM) sum_j sum_i [d(X_i, Y_j) < r_i]; coverage = mean_i [min_j d(X_i, Y_j) < r_i].
"""
from __future__ import annotations

from typing import Iterator

import torch

from ..errors import GanforgeError

K_PR = 3
K_DC = 5
_BLOCK_ELEMS = 1 << 24  # distance-matrix entries per block (128 MiB in float64)


def _blocks(a: torch.Tensor, b: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
    """Row blocks of the distance matrix d(a, b): (rows, [r, len(b)] float64)."""
    rows = max(1, _BLOCK_ELEMS // max(1, len(b)))
    for s in range(0, len(a), rows):
        yield slice(s, s + rows), torch.cdist(a[s:s + rows], b, compute_mode="use_mm_for_euclid_dist")


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each row of x [N, D] to its k-th nearest neighbour other than itself -> [N] float64."""
    if len(x) <= k:
        raise GanforgeError(f"a k={k} nearest-neighbour radius needs more than {k} samples, got {len(x)}")
    x = x.double()
    out = torch.empty(len(x), dtype=torch.float64, device=x.device)
    for rows, d in _blocks(x, x):
        out[rows] = d.kthvalue(k + 1, dim=1).values  # the smallest is the sample itself (0)
    return out


def _prep(real: torch.Tensor, fake: torch.Tensor, device: str | torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise GanforgeError(f"feature sets must be [N, D] with one D, got {tuple(real.shape)} and {tuple(fake.shape)}")
    return real.to(device, torch.float64), fake.to(device, torch.float64)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = K_PR,
                     device: str | torch.device = "cpu") -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019), inclusive `<=` -> dict(precision, recall)."""
    real, fake = _prep(real, fake, device)
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    fake_in = torch.zeros(len(fake), dtype=torch.bool, device=real.device)  # fake j inside some real ball
    real_in = torch.zeros(len(real), dtype=torch.bool, device=real.device)  # real i inside some fake ball
    for rows, d in _blocks(real, fake):                                     # d: [r, M] = d(X_i, Y_j)
        fake_in |= (d <= r_real[rows, None]).any(0)
        real_in[rows] = (d <= r_fake[None, :]).any(1)
    return dict(precision=float(fake_in.double().mean()), recall=float(real_in.double().mean()))


def density_coverage(real: torch.Tensor, fake: torch.Tensor, k: int = K_DC,
         device: str | torch.device = "cpu") -> dict[str, float]:
    """Naeem et al. 2020 `compute_prdc`, strict `<` -> dict(precision, recall, density, coverage)."""
    real, fake = _prep(real, fake, device)
    r_real, r_fake = knn_radii(real, k), knn_radii(fake, k)
    fake_in = torch.zeros(len(fake), dtype=torch.bool, device=real.device)
    real_in = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.device)
    inside = torch.zeros((), dtype=torch.float64, device=real.device)     # sum_j sum_i [d(X_i, Y_j) < r_i]
    for rows, d in _blocks(real, fake):
        ball = d < r_real[rows, None]                                      # [r, M]
        fake_in |= ball.any(0)
        inside += ball.sum()
        covered[rows] = d.min(1).values < r_real[rows]
        real_in[rows] = (d < r_fake[None, :]).any(1)
    return dict(precision=float(fake_in.double().mean()), recall=float(real_in.double().mean()),
                density=float(inside / (k * len(fake))), coverage=float(covered.double().mean()))
