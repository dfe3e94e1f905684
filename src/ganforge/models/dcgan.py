"""DCGAN (Radford et al. 2016), parametrised by resolution, channels and width.

At 64x64 with z_dim=100, g_width=d_width=64, g_norm=d_norm=batch this is exactly the pytorch/examples
`dcgan/main.py` network (ConvTranspose/Conv 4x4 stride 2, no biases), except that D returns logits
(the sigmoid lives in the loss).  Other resolutions start from a smaller map: 28 -> 7x7, 48 -> 6x6, 8 -> 4x4.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import GanforgeError
from .base import MODELS, ModelFamily, dcgan_init, maybe_sn, norm2d
from .layers import MinibatchStd, float_logits


def plan(h: int, w: int) -> tuple[int, int, int]:
    """(number of 2x up/down-samplings n, start height, start width): halve while even and >= 8."""
    n = 0
    while h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= 4:
        h, w, n = h // 2, w // 2, n + 1
    if n == 0:
        raise GanforgeError(f"conv nets need an image side that halves at least once to >= 4 pixels "
                            f"(e.g. 8, 16, 28, 32, 64); got {h}x{w}: set data.resolution")
    return n, h, w


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int, norm: str):
        super().__init__()
        c, h, w = shape
        n, h0, w0 = plan(h, w)
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, (h0, w0), 1, 0, bias=False), norm2d(norm, ch),
                                   nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), norm2d(norm, ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, c, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, C, H, W]
        return self.main(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """D: [N, pack*C, H, W] -> logits [N]; with out > 1 (an encoder) -> [N, out]. `features` is everything but
    the last convolution (mbstd > 0 appends the minibatch standard deviation there), `head` that convolution."""

    def __init__(self, shape: tuple[int, int, int], width: int, norm: str, pack: int = 1, out: int = 1,
                 mbstd: int = 0):
        super().__init__()
        c, h, w = shape
        n, h0, w0 = plan(h, w)
        bn = norm if norm in ("batch", "layer") else "none"
        layers: list[nn.Module] = [maybe_sn(nn.Conv2d(c * pack, width, 4, 2, 1, bias=False), norm),
                                   nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for _ in range(n - 1):
            layers += [maybe_sn(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), norm), norm2d(bn, ch * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        if mbstd:
            layers.append(MinibatchStd(mbstd))
        layers.append(maybe_sn(nn.Conv2d(ch + (mbstd > 0), out, (h0, w0), 1, 0, bias=False), norm))
        self.main = nn.Sequential(*layers)
        self.apply(dcgan_init)
        self.out = out
        self.feature_dim = (ch + (mbstd > 0)) * h0 * w0

    def features(self, x: torch.Tensor) -> torch.Tensor:  # [N, pack*C, H, W] -> [N, ch (+1), h0, w0]
        return self.main[:-1](x)

    def head(self, f: torch.Tensor) -> torch.Tensor:      # -> [N] (or [N, out])
        y = float_logits(self.main[-1], f).flatten(1)
        return y.squeeze(1) if self.out == 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, pack*C, H, W] -> [N] (or [N, out])
        return self.head(self.features(x))


def _img(shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise GanforgeError(f"conv models need image data [C, H, W], got items of shape {shape}")
    return shape  # type: ignore[return-value]


MODELS.register("dcgan")(ModelFamily(
    generator=lambda m, s: DCGANGenerator(m.z_dim, _img(s), m.g_width, m.g_norm),
    discriminator=lambda m, s: DCGANDiscriminator(_img(s), m.d_width, m.d_norm, m.pack, mbstd=m.mbstd),
    kind="image",
    describe="DCGAN conv G/D (Radford et al. 2016); 4x4 stride-2 (transposed) convs, widths double per level",
    encoder=lambda m, s: DCGANDiscriminator(_img(s), m.d_width, m.g_norm, 1, out=m.z_dim),
    d_norms=("batch", "none", "spectral", "layer"),
    mbstd=True,
))
