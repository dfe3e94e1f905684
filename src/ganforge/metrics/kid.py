"""Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"; reference/metrics.md §2).

Polynomial kernel k(x, y) = (x.y / D + 1)^3 in float64; unbiased MMD^2 per subset (within-set diagonals dropped,
all m^2 cross pairs kept); subsets of size m drawn without replacement, independently per set, from
`np.random.RandomState(seed)` in torch-fidelity's order (set 1 then set 2 per subset), so `seed=2020` reproduces
torch-fidelity. Defaults 100 subsets of 1000 (torch-fidelity, StyleGAN2-ADA); the subset size is clamped to the
smaller set (StyleGAN2-ADA / clean-fid) instead of failing as torch-fidelity does.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError

SUBSETS = 100
SUBSET_SIZE = 1000
_GRAM_BYTES = 1 << 30  # precompute the full Gram matrix when it fits in this and is cheaper than the subsets

# numpy, not torch: the subset loop is many small ops, and torch's intra-op thread pool costs ~0.1 s per op on an
# oversubscribed CPU (measured here); numpy's element-wise ops are single-threaded, its matmul still uses BLAS.


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """(x y^T / D + coef0)^degree, float64 [m1, m2]."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def mmd2_unbiased(kxx: np.ndarray, kxy: np.ndarray, kyy: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices [m, m] (torch-fidelity `mmd2(..., mmd_est="unbiased")`)."""
    m = kxx.shape[0]
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / (m * m))


def kid_subset_size(n1: int, n2: int, subset_size: int = SUBSET_SIZE) -> int:
    return min(subset_size, n1, n2)


def kid_from_features(f1: torch.Tensor, f2: torch.Tensor, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
                      seed: int = 0) -> dict[str, float]:
    """KID of feature sets [N1, D], [N2, D] -> dict(kid=mean, kid_std=std over subsets (ddof 0))."""
    n1, n2 = len(f1), len(f2)
    m = kid_subset_size(n1, n2, subset_size)
    if m < 2:
        raise GanforgeError(f"KID needs at least 2 samples per set, got {n1} and {n2}")
    d = f1.shape[1]
    x = torch.cat([f1, f2]).detach().cpu().double().numpy()          # [N1 + N2, D]
    n = n1 + n2
    # One Gram matrix of both sets costs n^2 D; the subsets cost 3 m^2 D each: at tick-sized N (a few thousand)
    # the Gram matrix is several times cheaper and gives the same kernel values.
    gram = x @ x.T if (n * n * 8 <= _GRAM_BYTES and n * n <= 3 * subsets * m * m) else None  # [n, n]
    rng = np.random.RandomState(seed)
    mmds = np.zeros(subsets)
    for i in range(subsets):
        a = rng.choice(n1, m, replace=False)
        b = rng.choice(n2, m, replace=False) + n1
        if gram is not None:
            kxx, kxy, kyy = ((gram[np.ix_(r, c)] / d + 1) ** 3 for r, c in ((a, a), (a, b), (b, b)))
        else:
            xa, xb = x[a], x[b]
            kxx, kxy, kyy = polynomial_kernel(xa, xa), polynomial_kernel(xa, xb), polynomial_kernel(xb, xb)
        mmds[i] = mmd2_unbiased(kxx, kxy, kyy)
    return dict(kid=float(mmds.mean()), kid_std=float(mmds.std()))
