"""ResNet G and D in the style of SNGAN / WGAN-GP (Miyato et al. 2018; Gulrajani et al. 2017).

G: linear -> [width, h0, w0] -> n up-blocks (BN-ReLU-up-conv3-BN-ReLU-conv3 + up-conv1 shortcut) -> BN-ReLU-conv3-tanh.
D: optimized first block, n-1 down-blocks, ReLU, global sum pool, linear.  Constant width per network.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODELS, ModelFamily, maybe_sn, norm2d
from .layers import MinibatchStd, float_logits
from .dcgan import _img, plan


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__()
        self.b1, self.c1 = norm2d(norm, cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.b2, self.c2 = norm2d(norm, cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.b1(x)), scale_factor=2.0, mode="nearest")
        h = self.c2(F.relu(self.b2(self.c1(h))))
        return h + self.sc(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, first: bool):
        super().__init__()
        self.first = first
        self.c1 = maybe_sn(nn.Conv2d(cin, cout, 3, 1, 1), norm)
        self.c2 = maybe_sn(nn.Conv2d(cout, cout, 3, 1, 1), norm)
        self.sc = maybe_sn(nn.Conv2d(cin, cout, 1), norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.c2(F.relu(self.c1(h))), 2)
        s = self.sc(F.avg_pool2d(x, 2)) if self.first else F.avg_pool2d(self.sc(x), 2)
        return h + s


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        c, h, w = shape
        n, self.h0, self.w0 = plan(h, w)
        self.width = width
        self.fc = nn.Linear(z_dim, width * self.h0 * self.w0)
        self.blocks = nn.Sequential(*[GBlock(width, width, norm) for _ in range(n)])
        self.out = nn.Sequential(norm2d(norm, width), nn.ReLU(), nn.Conv2d(width, c, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, C, H, W]
        x = self.fc(z).view(z.shape[0], self.width, self.h0, self.w0)
        return self.out(self.blocks(x))


class ResNetDiscriminator(nn.Module):
    """D: [N, pack*C, H, W] -> logits [N]; with out > 1 (an encoder) -> [N, out]. `features`: the blocks, ReLU and
    global sum pool (mbstd > 0 appends the minibatch standard deviation before the pool); `head`: the linear."""

    def __init__(self, shape: tuple[int, int, int], width: int, norm: str, pack: int = 1, out: int = 1,
                 mbstd: int = 0):
        super().__init__()
        c, h, w = shape
        n, _, _ = plan(h, w)
        blocks = [DBlock(c * pack, width, norm, first=True)]
        blocks += [DBlock(width, width, norm, first=False) for _ in range(n - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.mbstd = MinibatchStd(mbstd) if mbstd else None
        self.fc = maybe_sn(nn.Linear(width + (mbstd > 0), out), norm)
        self.out = out
        self.feature_dim = width + (mbstd > 0)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [N, pack*C, H, W] -> [N, width (+1)]
        h = F.relu(self.blocks(x))
        if self.mbstd is not None:
            h = self.mbstd(h)
        return h.sum(dim=(2, 3))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        y = float_logits(self.fc, f)
        return y.squeeze(1) if self.out == 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, pack*C, H, W] -> [N] (or [N, out])
        return self.head(self.features(x))


MODELS.register("resnet")(ModelFamily(
    generator=lambda m, s: ResNetGenerator(m.z_dim, _img(s), m.g_width, m.g_norm),
    discriminator=lambda m, s: ResNetDiscriminator(_img(s), m.d_width, m.d_norm, m.pack, mbstd=m.mbstd),
    kind="image",
    describe="SNGAN-style residual G/D (Miyato et al. 2018); use with model.d_norm=spectral and the hinge loss",
    encoder=lambda m, s: ResNetDiscriminator(_img(s), m.d_width, "none", 1, out=m.z_dim),
    d_norms=("none", "spectral"),  # D has no batch norm (SNGAN's has none either)
    mbstd=True,
))
