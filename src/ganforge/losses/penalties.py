"""Gradient penalties. Both need a double backward: never call them inside a compiled region."""
from __future__ import annotations

from typing import Callable

import torch

from ..utils.rng import rand_local

Tensor = torch.Tensor


def gradient_penalty(D: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, generator=None) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad D(x_hat)||_2 - 1)^2], x_hat on random real-fake interpolates.
    The interpolation weights are each rank's slice of one global draw (utils.rng)."""
    shape = (real.shape[0],) + (1,) * (real.ndim - 1)
    eps = rand_local(shape, generator, real.device, real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    out = D(x_hat)
    (grad,) = torch.autograd.grad(out.float().sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).float().norm(2, dim=1) - 1) ** 2).mean()


def r1_penalty(logits: Tensor, x: Tensor) -> Tensor:
    """Zero-centred gradient penalty E[||grad_x D(x)||^2] (Mescheder et al. 2018): R1 on real data, R2 on generated
    data (the same function). `x` must require grad; `logits` = D(x), one per item (or per packed group)."""
    (grad,) = torch.autograd.grad(logits.float().sum(), x, create_graph=True)
    return grad.flatten(1).float().pow(2).sum(1).mean()


r2_penalty = r1_penalty  # the same penalty, on generated samples
