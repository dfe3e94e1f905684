"""Optimisers, built by name (`optim.name`). Each entry is a function

    build(params, lr, betas, weight_decay, fast, **options) -> torch.optim.Optimizer

`betas` are the two numbers of optim.g_betas / optim.d_betas (their meaning per optimiser is in its doc);
`fast` asks for a fused or foreach implementation where the device has one (deterministic: no atomics).
An optimiser with options of its own registers them: `OPTIMIZERS.register(name, options=Dataclass)`.
"""
from __future__ import annotations

from typing import Callable

import torch

from .registry import Registry

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimiser")


@OPTIMIZERS.register("adam", doc="Adam (Kingma & Ba 2015); betas = (beta1, beta2); fused kernel on CPU and CUDA")
def adam(params, lr, betas, weight_decay, fast):
    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, **({"fused": True} if fast else {}))


@OPTIMIZERS.register("sgd", doc="SGD with momentum = beta1 (beta2 unused)")
def sgd(params, lr, betas, weight_decay, fast):
    return torch.optim.SGD(params, lr=lr, momentum=betas[0], weight_decay=weight_decay,
                           **({"fused": True} if fast else {}))


@OPTIMIZERS.register("rmsprop", doc="RMSprop with alpha = beta2, momentum = beta1 (WGAN's: betas [0, 0.99])")
def rmsprop(params, lr, betas, weight_decay, fast):
    return torch.optim.RMSprop(params, lr=lr, alpha=betas[1], momentum=betas[0], weight_decay=weight_decay,
                               foreach=fast or None)  # RMSprop has no fused kernel


def make_optimizer(ocfg, which: str, params, device: torch.device) -> torch.optim.Optimizer:
    """The optimiser of network `which` ("g" or "d") as optim.* asks."""
    b1, b2 = getattr(ocfg, f"{which}_betas")
    return OPTIMIZERS.get(ocfg.name)(params, lr=getattr(ocfg, f"{which}_lr"), betas=(b1, b2),
                                     weight_decay=ocfg.weight_decay, fast=device.type in ("cuda", "cpu"),
                                     **ocfg.options)
