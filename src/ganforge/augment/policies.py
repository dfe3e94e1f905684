"""DiffAugment's transformations (Zhao et al. 2020, section 3 and their reference implementation's choices):
functions (x [B, C, H, W] in model range, u [B, k] uniform numbers) -> x', differentiable in x.

Each takes its random numbers as an argument (drawn by the caller from the run's shared generator, so several
processes and a resumed run draw the same ones) and transforms every image in the batch; `Augment` applies
it to a random subset with probability p.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class Policy:
    fn: Callable[[Tensor, Tensor], Tensor]  # (x, u [B, n_random]) -> augmented x
    n_random: int                            # uniform numbers per image
    doc: str = ""


AUGMENTATIONS: Registry[Policy] = Registry("augmentation")


def _color(x: Tensor, u: Tensor) -> Tensor:
    # brightness + U(-0.5, 0.5); saturation x U(0, 2) around the pixel's channel mean; contrast x U(0.5, 1.5)
    # around the image mean (the model range is [-1, 1], as in DiffAugment)
    u = u.to(x.dtype)[:, :, None, None, None]  # [B, 3, 1, 1, 1]
    x = x + (u[:, 0] - 0.5)
    if x.shape[1] > 1:
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (u[:, 1] * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (u[:, 2] + 0.5) + mean


def _translation(x: Tensor, u: Tensor, ratio: float = 0.125) -> Tensor:
    # shift by up to ratio x size in each direction (whole pixels), zeros shifted in
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = (u[:, 0] * (2 * sh + 1)).long().clamp_(max=2 * sh) - sh  # [B] in [-sh, sh]
    dx = (u[:, 1] * (2 * sw + 1)).long().clamp_(max=2 * sw) - sw
    padded = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h, device=x.device)[None, :] + sh - dy[:, None]   # [B, H]
    cols = torch.arange(w, device=x.device)[None, :] + sw - dx[:, None]   # [B, W]
    bi = torch.arange(b, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)  # [B, C, H, W] (channels_last strides)


def _cutout(x: Tensor, u: Tensor, ratio: float = 0.5) -> Tensor:
    # a ratio x size rectangle of zeros, centred anywhere in the image (it may stick out of it)
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (u[:, 0] * h).floor()[:, None]  # [B, 1] centre row
    cx = (u[:, 1] * w).floor()[:, None]
    ys = torch.arange(h, device=x.device, dtype=cy.dtype)[None, :]  # [1, H]
    xs = torch.arange(w, device=x.device, dtype=cx.dtype)[None, :]
    in_y = ((ys - cy + ch // 2) >= 0) & ((ys - cy + ch // 2) < ch)   # [B, H]
    in_x = ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)   # [B, W]
    keep = ~(in_y[:, :, None] & in_x[:, None, :])                    # [B, H, W]
    return x * keep[:, None].to(x.dtype)


AUGMENTATIONS.register("color")(Policy(_color, 3, "brightness, saturation and contrast (DiffAugment 'color')"))
AUGMENTATIONS.register("translation")(Policy(_translation, 2, "shift by up to 1/8 of the size, zero fill"))
AUGMENTATIONS.register("cutout")(Policy(_cutout, 2, "a zeroed rectangle of half the size at a random place"))
