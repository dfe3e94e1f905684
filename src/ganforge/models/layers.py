"""Layers every family may use: minibatch standard deviation, and the class-conditioning wrappers.

Conditioning is generic (any family): G(z, c) = G'(cat(z, embed(c))) with G' built for a latent of z_dim + the
embedding's size (a class embedding concatenated to z, for normalisation-free generators too), and the
projection discriminator D(x, c) = head(phi(x)) + <embed(c), phi(x)> (Miyato & Koyama 2018), which needs the
family's D to expose `features(x) -> phi` and `head(phi) -> logits [N]` (every built-in D does).

Every D computes its logits in float32 under bf16/fp16 autocast (`float_logits`): a loss that sees only logit
differences (relativistic) leaves the logits' common level free to drift, and runs drift to |logit| > 100, where
bf16's step is 0.5-1.0 -- as large as the real-fake difference the loss learns from. Measured on stacked digits
(r3gan, relativistic, R1 + R2, bf16): two of three seeds drifted to logits near -140 and covered 721 and 842
modes against 977 for the seed whose logits stayed near 10.
"""
from __future__ import annotations

import torch
from torch import nn


def float_logits(layer: nn.Module, f: torch.Tensor) -> torch.Tensor:
    """`layer(f)` (D's last layer) in float32 even under autocast; one small layer, so the cost is negligible."""
    if torch.is_autocast_enabled(f.device.type):
        with torch.autocast(f.device.type, enabled=False):
            return layer(f.float())
    return layer(f)


class MinibatchStd(nn.Module):
    """Append the standard deviation of each feature over groups of `group` samples, averaged to one value per
    group, as an extra channel (conv features [N, C, H, W]) or feature ([N, F]) (Karras et al. 2018, ProGAN):
    D sees how varied the batch is, which penalises a generator that collapses. Groups are consecutive samples;
    a batch not divisible by `group` uses the largest divisor that is not larger."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        g = max(d for d in range(1, min(self.group, n) + 1) if n % d == 0)
        y = x.float().reshape(g, n // g, *x.shape[1:])                       # [G, M, ...]
        # the variance written out: torch's var() over a short leading dim is ~40x slower on CPU (4 ms against
        # 0.1-0.6 ms for D's last features at batch 64), which made mbstd cost a third of a DCGAN step
        var = (y - y.mean(0)).square().mean(0)                               # [M, ...]
        std = (var + 1e-8).sqrt()
        std = std.flatten(1).mean(1)                                         # [M]
        std = std.repeat(g)                                                  # [N]: sample i belongs to group i % M
        extra = std.view(n, 1, *([1] * (x.ndim - 2))).expand(n, 1, *x.shape[2:]).to(x.dtype)
        return torch.cat([x, extra], 1)


class ConditionalGenerator(nn.Module):
    """G(z, c): the family's generator, built for z_dim + dim inputs, on cat(z, embed(c))."""

    def __init__(self, G: nn.Module, n_classes: int, dim: int):
        super().__init__()
        self.G, self.embed = G, nn.Embedding(n_classes, dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0)  # like the latent: unit variance per coordinate

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:   # [N, z_dim], int64 [N]
        return self.G(torch.cat([z, self.embed(c).to(z.dtype)], 1))


class ProjectionDiscriminator(nn.Module):
    """D(x, c) = head(phi(x)) + <embed(c), phi(x)> (Miyato & Koyama 2018)."""

    def __init__(self, D: nn.Module, n_classes: int, dim: int):
        super().__init__()
        self.D, self.embed = D, nn.Embedding(n_classes, dim)
        nn.init.normal_(self.embed.weight, 0.0, dim ** -0.5)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:   # [N, ...], int64 [N] -> [N]
        f = self.D.features(x)
        return self.D.head(f) + (self.embed(c).float() * f.flatten(1).float()).sum(1)   # float32: float_logits
