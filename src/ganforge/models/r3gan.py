"""A normalisation-free ResNet G and D after R3GAN (Huang, Gokaslan, Kuleshov, Tompkin, NeurIPS 2024, "The GAN is
dead; long live the GAN! A Modern GAN Baseline"), written from the paper's description (its official code is
under NVIDIA's non-commercial licence; none of it is used here):

- no normalisation layer, no mapping network, style modulation, noise input or equalised learning rate;
- residual blocks in the ResNeXt style with an inverted bottleneck: a 1x1 conv widens the channels by
  `expansion`, leaky ReLU (0.2), a 3x3 grouped conv (`group_width` channels per group), leaky ReLU, a 1x1 conv
  back; the block returns x + branch;
- fix-up style initialisation (Zhang et al. 2019): the last conv of every branch starts at zero and the other
  two are scaled by L^(-1/4) (L residual blocks, three layers per branch: L^(-1/(2m-2)) with m = 3), so the
  network starts as its plain path and its output variance does not grow with depth;
- bilinear resampling between resolutions (G: 1x1 conv to the next width, then 2x bilinear upsampling;
  D: antialiased bilinear 2x downsampling, then a 1x1 conv);
- G: z -> linear -> [C, h0, w0] -> stages -> leaky ReLU -> 1x1 conv -> tanh (model range).
  D: 1x1 conv from the image -> stages -> leaky ReLU -> (minibatch std) -> a conv over the whole h0 x w0 map ->
  leaky ReLU -> linear -> logit (`features` ends before the linear, for the projection head).
Widths: the full resolution has model.g_width / model.d_width channels and every lower resolution twice as many,
capped at `width_max`. Any size that halves to >= 4 pixels works (16 to 256 pixels, non-square ones such as
32x64 too). Train it with the relativistic loss and both zero-centred penalties, as the paper does:
`loss.name=relativistic loss.r1_gamma=G loss.r2_gamma=G` (see docs/theory.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanforgeError
from .base import MODELS, ModelFamily
from .dcgan import _img, plan
from .layers import MinibatchStd, float_logits

SLOPE = 0.2


@dataclass
class R3GANOptions:
    blocks: int = 2          # residual blocks per resolution
    expansion: int = 2       # inverted bottleneck: the 3x3 conv of a block works at expansion x its channels
    group_width: int = 16    # channels per group of the 3x3 grouped conv (ResNeXt: cardinality = width / this)
    width_max: int = 512     # channels of the widest resolution

    def __post_init__(self) -> None:
        for k in ("blocks", "expansion", "group_width", "width_max"):
            if getattr(self, k) < 1:
                raise GanforgeError(f"model.{k}: must be >= 1, got {getattr(self, k)}")


def _act(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


class Block(nn.Module):
    """x + conv1x1(act(conv3x3_grouped(act(conv1x1(x))))), the last conv zero-initialised."""

    def __init__(self, ch: int, expansion: int, group_width: int, scale: float):
        super().__init__()
        mid = ch * expansion
        groups = max(1, mid // group_width)
        while mid % groups:
            groups -= 1
        self.c1 = nn.Conv2d(ch, mid, 1)
        self.c2 = nn.Conv2d(mid, mid, 3, padding=1, groups=groups)
        self.c3 = nn.Conv2d(mid, ch, 1)
        for conv in (self.c1, self.c2):
            nn.init.kaiming_normal_(conv.weight, a=SLOPE, nonlinearity="leaky_relu")
            conv.weight.data.mul_(scale)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.c3.weight)
        nn.init.zeros_(self.c3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.c3(_act(self.c2(_act(self.c1(x)))))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # resampled in float32: CPU kernels have no bf16 version (under autocast)
        return F.interpolate(y.float(), scale_factor=2.0, mode="bilinear", align_corners=False).to(y.dtype)


class Down(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.interpolate(x.float(), scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True)
        return self.conv(y.to(x.dtype))


def _widths(width: int, n: int, cap: int) -> list[int]:
    """Channels per resolution, lowest first: width x 2^(n - i) at level i (level n = full size), capped."""
    return [min(width * 2 ** (n - i), cap) for i in range(n + 1)]


class R3GANGenerator(nn.Module):
    def __init__(self, z_dim: int, shape: tuple[int, int, int], width: int, opts: R3GANOptions):
        super().__init__()
        c, h, w = shape
        n, self.h0, self.w0 = plan(h, w)
        self.widths = _widths(width, n, opts.width_max)
        scale = ((n + 1) * opts.blocks) ** -0.25
        self.basis = nn.Linear(z_dim, self.widths[0] * self.h0 * self.w0)
        stages = []
        for i, ch in enumerate(self.widths):
            layers: list[nn.Module] = [Up(self.widths[i - 1], ch)] if i else []
            layers += [Block(ch, opts.expansion, opts.group_width, scale) for _ in range(opts.blocks)]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.to_image = nn.Conv2d(self.widths[-1], c, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [N, z_dim] -> [N, C, H, W] in [-1, 1]
        x = self.basis(z).view(z.shape[0], self.widths[0], self.h0, self.w0)
        return torch.tanh(self.to_image(_act(self.stages(x))))


class R3GANDiscriminator(nn.Module):
    """[N, pack*C, H, W] -> logits [N] (or [N, out] for an encoder)."""

    def __init__(self, shape: tuple[int, int, int], width: int, opts: R3GANOptions, pack: int = 1, mbstd: int = 0,
                 out: int = 1):
        super().__init__()
        c, h, w = shape
        n, h0, w0 = plan(h, w)
        widths = _widths(width, n, opts.width_max)[::-1]  # full size first
        scale = ((n + 1) * opts.blocks) ** -0.25
        self.from_image = nn.Conv2d(c * pack, widths[0], 1)
        stages = []
        for i, ch in enumerate(widths):
            layers: list[nn.Module] = [Block(ch, opts.expansion, opts.group_width, scale) for _ in range(opts.blocks)]
            if i < n:
                layers.append(Down(ch, widths[i + 1]))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.mbstd = MinibatchStd(mbstd) if mbstd else None
        self.basis = nn.Conv2d(widths[-1] + (mbstd > 0), widths[-1], (h0, w0))
        self.fc = nn.Linear(widths[-1], out)
        self.out, self.feature_dim = out, widths[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:  # -> [N, C]
        h = _act(self.stages(self.from_image(x)))
        if self.mbstd is not None:
            h = self.mbstd(h)
        return _act(self.basis(h)).flatten(1)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        y = float_logits(self.fc, f)
        return y.squeeze(1) if self.out == 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _opts(m) -> R3GANOptions:
    return R3GANOptions(**m.options)


MODELS.register("r3gan", options=R3GANOptions)(ModelFamily(
    generator=lambda m, s: R3GANGenerator(m.z_dim, _img(s), m.g_width, _opts(m)),
    discriminator=lambda m, s: R3GANDiscriminator(_img(s), m.d_width, _opts(m), m.pack, m.mbstd),
    kind="image",
    describe="normalisation-free ResNeXt G/D after R3GAN (Huang et al. 2024); train with loss.name=relativistic "
             "and R1 + R2",
    encoder=lambda m, s: R3GANDiscriminator(_img(s), m.d_width, _opts(m), 1, 0, out=m.z_dim),
    g_norms=("none",), d_norms=("none",), mbstd=True,
))
