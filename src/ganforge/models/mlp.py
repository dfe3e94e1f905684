"""MLP generator and discriminator for vector data (toy 2-D sets, user vectors)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GanforgeError
from .base import MODELS, ModelFamily, maybe_sn
from .layers import MinibatchStd, float_logits


class MLPGenerator(nn.Module):
    def __init__(self, z_dim: int, out_dim: int, width: int, depth: int, norm: str):
        super().__init__()
        layers: list[nn.Module] = []
        d = z_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width, bias=norm != "batch")]
            if norm == "batch":
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU())
            d = width
        layers.append(nn.Linear(d, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, D]
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D: [N, pack * D] -> logits [N]; with out > 1 (an encoder) -> [N, out]. `features` is everything but the
    last linear layer (mbstd > 0 appends the minibatch standard deviation there), `head` that layer."""

    def __init__(self, in_dim: int, width: int, depth: int, norm: str, out: int = 1, mbstd: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers.append(maybe_sn(nn.Linear(d, width), norm))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.LeakyReLU(0.2))
            d = width
        if mbstd:
            layers.append(MinibatchStd(mbstd))
        layers.append(maybe_sn(nn.Linear(d + (mbstd > 0), out), norm))
        self.net = nn.Sequential(*layers)
        self.out = out
        self.feature_dim = d + (mbstd > 0)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [N, pack * D] -> [N, width (+1)]
        return self.net[:-1](x)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        y = float_logits(self.net[-1], f)
        return y.squeeze(1) if self.out == 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, pack * D] -> [N] (or [N, out])
        return self.head(self.features(x))


def _check(shape: tuple[int, ...]) -> int:
    if len(shape) != 1:
        raise GanforgeError(f"model.arch 'mlp' needs vector data, got items of shape {shape}")
    return shape[0]


MODELS.register("mlp")(ModelFamily(
    generator=lambda m, shape: MLPGenerator(m.z_dim, _check(shape), m.g_width, m.depth, m.g_norm),
    discriminator=lambda m, shape: MLPDiscriminator(_check(shape) * m.pack, m.d_width, m.depth, m.d_norm,
                                                     mbstd=m.mbstd),
    kind="vector",
    describe="MLP G and D (depth hidden layers of width units; ReLU in G, LeakyReLU(0.2) in D)",
    encoder=lambda m, shape: MLPDiscriminator(_check(shape), m.d_width, m.depth, m.g_norm, out=m.z_dim),
    mbstd=True,
))
