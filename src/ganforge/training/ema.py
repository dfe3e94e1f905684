"""Exponential moving average of G's weights (Karras et al. 2018; Yazici et al. 2019), StyleGAN2-ADA style."""
from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch: int, ema_kimg: float, rampup: float, cur_nimg: int) -> float:
    """Per-step decay so that the half-life is ema_kimg thousand images (at most rampup * images seen)."""
    if ema_kimg <= 0:
        return 0.0
    ema_nimg = ema_kimg * 1000.0
    if rampup > 0:
        ema_nimg = min(ema_nimg, cur_nimg * rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """p_ema <- beta * p_ema + (1 - beta) * p; buffers (BN statistics) are copied."""
    ema_p = list(G_ema.parameters())
    p = [q.detach() for q in G.parameters()]
    if beta == 0.0:
        torch._foreach_copy_(ema_p, p)
    else:
        torch._foreach_lerp_(ema_p, p, 1.0 - beta)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)
