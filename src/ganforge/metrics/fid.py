"""Frechet distance (FID when the features are Inception pool3; reference/metrics.md §1.5, §1.6).

Statistics: mean and **unbiased** covariance (/(N-1), as TTUR / pytorch-fid / torch-fidelity `np.cov`), accumulated
as sum(x) and sum(x x^T) in float64 over fixed-size chunks, so they do not depend on any batch size.
Trace term: tr sqrt(S1 S2) = sum_i sqrt(lambda_i(S1 S2)) with the eigenvalues cast to complex before the root
(torch-fidelity >= 0.4 `fid_statistics_to_metric`); `method="sqrtm"` is the scipy reference used by tests.

When a set has no more samples than dimensions (N <= D: tick-sized sets, tests), the covariances are
rank-deficient and the D x D eigenvalue route spends O(D^3) time mostly on zero eigenvalues whose rounding noise
(~1e-13 ||S||^2) each add sqrt(noise) to the trace. There `fid_from_features` uses the exact identity
tr sqrt(S1 S2) = ||A1 A2^T||_* (nuclear norm), A = centred features / sqrt(N - 1), since S = A^T A and the non-zero
eigenvalues of A1^T A1 A2^T A2 are those of C C^T with C = A1 A2^T [N1, N2]: same value, no noise, O(N1 N2 D).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError

STATS_CHUNK = 4096  # rows per float64 update: fixed, so results never depend on the caller's batching


class FeatureStats:
    """Streaming sum(x) [D] and sum(x x^T) [D, D] in float64 (StyleGAN2-ADA `FeatureStats`)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sum_xxt = torch.zeros(dim, dim, dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        x = x.detach().to("cpu", torch.float64)                  # [B, D]
        self.n += x.shape[0]
        self.sum += x.sum(0)
        self.sum_xxt += x.T @ x

    def mean_cov(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [D], sigma [D, D]) float64, sigma unbiased."""
        if self.n < 2:
            raise GanforgeError(f"a Frechet distance needs at least 2 samples per set, got {self.n}")
        mu = self.sum / self.n
        sigma = (self.sum_xxt - self.n * torch.outer(mu, mu)) / (self.n - 1)
        return mu.numpy(), sigma.numpy()


def feature_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """features [N, D] -> (mu [D], sigma [D, D]) float64 (unbiased covariance)."""
    acc = FeatureStats(features.shape[1])
    for s in range(0, features.shape[0], STATS_CHUNK):
        acc.update(features[s:s + STATS_CHUNK])
    return acc.mean_cov()


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, method: str = "eig") -> float:
    """tr sqrt(sigma1 @ sigma2) in float64."""
    prod = np.asarray(sigma1, np.float64) @ np.asarray(sigma2, np.float64)
    if method == "eig":
        # eigvals returns a real array when all eigenvalues are real: cast first, or tiny negatives give NaN
        return float(np.sqrt(np.linalg.eigvals(prod).astype(np.complex128)).real.sum())
    if method == "sqrtm":
        import scipy.linalg  # reference path only (slow: ~11 s at D = 2048)

        return float(np.trace(scipy.linalg.sqrtm(prod)).real)
    raise GanforgeError(f"unknown trace-sqrt method {method!r}; choose eig or sqrtm")


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     method: str = "eig") -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2) (Frechet distance of two Gaussians).

    Tiny negative values (~-1e-6) for identical sets are float noise and are returned as they are.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    if mu1.shape != mu2.shape or np.shape(sigma1) != np.shape(sigma2):
        raise GanforgeError(f"feature sizes differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    tr = trace_sqrt_product(sigma1, sigma2, method)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr)


def lowrank_applies(n1: int, n2: int, dim: int) -> bool:
    return min(n1, n2) <= dim


def fid_lowrank(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """Frechet distance via the nuclear norm of A1 A2^T (exact; meant for min(N1, N2) <= D)."""
    for f in (f1, f2):
        if len(f) < 2:
            raise GanforgeError(f"a Frechet distance needs at least 2 samples per set, got {len(f)}")
    x1, x2 = f1.double(), f2.double()
    mu1, mu2 = x1.mean(0), x2.mean(0)
    a1, a2 = (x1 - mu1) / (len(x1) - 1) ** 0.5, (x2 - mu2) / (len(x2) - 1) ** 0.5   # S = A^T A
    diff = mu1 - mu2
    tr_sqrt = torch.linalg.svdvals(a1 @ a2.T).sum()                                  # [N1, N2] -> nuclear norm
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2 * tr_sqrt)


def fid_from_features(f1: torch.Tensor, f2: torch.Tensor, method: str = "auto") -> float:
    """Frechet distance between two feature sets [N1, D], [N2, D].

    method: "auto" (low-rank identity when min(N1, N2) <= D, else "eig"), "eig", "sqrtm" or "lowrank".
    """
    if method == "lowrank" or (method == "auto" and lowrank_applies(len(f1), len(f2), f1.shape[1])):
        return fid_lowrank(f1, f2)
    return frechet_distance(*feature_stats(f1), *feature_stats(f2), method="eig" if method == "auto" else method)
