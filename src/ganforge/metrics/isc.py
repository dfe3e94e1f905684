"""Inception Score (Salimans et al. 2016; reference/metrics.md §3), as torch-fidelity computes it.

Logits without the fc bias (1008 classes), float64 softmax; the samples are shuffled with
`np.random.RandomState(seed).permutation` and split into `splits` chunks [i*N//s, (i+1)*N//s); per chunk
exp(mean_x KL(p(y|x) || p(y))); mean and std (ddof 0) over chunks. `seed=2020` reproduces torch-fidelity.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import GanforgeError

SPLITS = 10


def is_from_logits(logits: torch.Tensor, splits: int = SPLITS, seed: int = 0,
                   shuffle: bool = True) -> dict[str, float]:
    """logits [N, C] -> dict(is=mean, is_std=std over splits)."""
    n = logits.shape[0]
    if n < splits:
        raise GanforgeError(f"the Inception Score with {splits} splits needs at least {splits} samples, got {n}")
    x = logits.detach().cpu().double().numpy()                          # numpy: few threads, few small ops
    if shuffle:
        x = x[np.random.RandomState(seed).permutation(n)]
    log_p = x - x.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))                # log_softmax [N, C]
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        sl = slice(i * n // splits, (i + 1) * n // splits)
        q = p[sl].mean(0, keepdims=True)                                 # [1, C] marginal p(y) of the chunk
        kl = (p[sl] * (log_p[sl] - np.log(q))).sum(1).mean()
        scores.append(float(np.exp(kl)))
    return {"is": float(np.mean(scores)), "is_std": float(np.std(scores))}
