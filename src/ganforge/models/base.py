"""Model registry and the pieces every family shares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..errors import GanforgeError
from ..registry import Registry


@dataclass(frozen=True)
class ModelFamily:
    generator: Callable[..., nn.Module]      # (model_cfg, data_shape) -> G
    discriminator: Callable[..., nn.Module]  # (model_cfg, data_shape) -> D  (input has pack * channels)
    kind: str                                # "image" | "vector": which data the family accepts
    describe: str = ""


MODELS: Registry[ModelFamily] = Registry("model architecture")


def build_models(mcfg, data_shape: tuple[int, ...], kind: str) -> tuple[nn.Module, nn.Module]:
    """ModelConfig + the shape of one data item -> (G, D), freshly initialised (uses the global torch RNG)."""
    fam = MODELS.get(mcfg.arch)
    if fam.kind != kind:
        others = [n for n in MODELS.names() if MODELS.get(n).kind == kind]
        raise GanforgeError(f"model.arch: {mcfg.arch!r} is for {fam.kind} data, but this dataset is {kind} data; "
                            f"choose one of: {', '.join(others)}")
    return fam.generator(mcfg, data_shape), fam.discriminator(mcfg, data_shape)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def norm2d(kind: str, ch: int) -> nn.Module:
    return nn.BatchNorm2d(ch) if kind == "batch" else nn.Identity()


def maybe_sn(layer: nn.Module, d_norm: str) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) when d_norm == 'spectral'."""
    if d_norm == "spectral":
        return nn.utils.parametrizations.spectral_norm(layer)
    return layer


def dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) weights, BN gamma N(1, 0.02) (Radford et al. 2016)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        nn.init.normal_(w, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@torch.no_grad()
def sample_prior(n: int, z_dim: int, prior: str, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", truncation: float | None = None) -> torch.Tensor:
    """Latents [n, z_dim]: 'normal' N(0, I) or 'uniform' U[-1, 1] (Goodfellow et al. 2014).

    truncation t: normal -> values with |z| > t are resampled (BigGAN's truncation trick);
    uniform -> the range shrinks to [-t, t].
    """
    if prior == "normal":
        z = torch.randn(n, z_dim, generator=generator, device=device)
        if truncation is not None:
            bad = z.abs() > truncation
            while bool(bad.any()):
                z = torch.where(bad, torch.randn(n, z_dim, generator=generator, device=device), z)
                bad = z.abs() > truncation
        return z
    if prior == "uniform":
        z = torch.rand(n, z_dim, generator=generator, device=device).mul_(2).sub_(1)
        return z * truncation if truncation is not None else z
    raise GanforgeError(f"model.prior: {prior!r} is not one of normal, uniform")
