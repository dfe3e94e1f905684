"""Latent priors p(z), built by name (`model.prior`): sampling, truncation, interpolation, and what
projection (ganforge.inversion) needs to stay where the generator was trained.

  normal   z ~ N(0, I); truncation t draws from N(0, I) restricted to [-t, t] per coordinate (BigGAN's
           truncation trick), exactly, by inverse-CDF sampling; interpolation along great circles (slerp).
  uniform  z ~ U[-1, 1]^d (Goodfellow et al. 2014); truncation t in (0, 1] shrinks the range to [-t, t];
           linear interpolation; projection clamps z back into the box.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import GanforgeError
from ..registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class Prior:
    sample: Callable[[int, int, torch.Generator | None, torch.device | str], Tensor]   # (n, z_dim, gen, device)
    truncated: Callable[[int, int, float, torch.Generator | None, torch.device | str], Tensor]
    interpolate: Callable[[Tensor, Tensor, Tensor], Tensor]  # (z0 [1, d], z1 [1, d], t [k, 1]) -> [k, d]
    max_truncation: float = math.inf                 # largest truncation that changes anything
    penalty: Callable[[Tensor], Tensor] | None = None    # -log p(z) / z_dim up to constants, per item [N]
    project: Callable[[Tensor], None] | None = None     # in place: back into the support after a step
    doc: str = ""


PRIORS: Registry[Prior] = Registry("latent prior")


def _normal_truncated(n, d, t, gen, device):
    # inverse-CDF sampling of N(0, 1) restricted to [-t, t]: exact, one pass, for any t > 0
    lo = torch.special.ndtr(torch.tensor(-t, dtype=torch.float64))
    u = torch.rand(n, d, generator=gen, device=device, dtype=torch.float64)
    z = torch.special.ndtri(lo + u * (1 - 2 * lo))
    return z.clamp_(-t, t).float()


def _slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    omega = torch.arccos((z0 / z0.norm() * z1 / z1.norm()).sum().clamp(-1, 1))
    so = torch.sin(omega)
    if so <= 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) / so) * z0 + (torch.sin(t * omega) / so) * z1


PRIORS.register("normal")(Prior(
    sample=lambda n, d, gen, device: torch.randn(n, d, generator=gen, device=device),
    truncated=_normal_truncated,
    interpolate=_slerp,
    penalty=lambda z: z.pow(2).mean(1) / 2,
    doc="N(0, I); truncation t resamples within [-t, t]; slerp interpolation"))
PRIORS.register("uniform")(Prior(
    sample=lambda n, d, gen, device: torch.rand(n, d, generator=gen, device=device).mul_(2).sub_(1),
    truncated=lambda n, d, t, gen, device: torch.rand(n, d, generator=gen, device=device).mul_(2).sub_(1) * t,
    interpolate=lambda z0, z1, t: (1 - t) * z0 + t * z1,
    max_truncation=1.0,
    project=lambda z: z.clamp_(-1, 1),
    doc="U[-1, 1]^d (Goodfellow et al. 2014); truncation t shrinks the range to [-t, t]; linear interpolation"))


def check_truncation(truncation: float | None, prior: str) -> None:
    """None, or a number in (0, the prior's largest useful value]; anything else is a clear error."""
    if truncation is None:
        return
    top = PRIORS.get(prior).max_truncation
    if not (isinstance(truncation, (int, float)) and not isinstance(truncation, bool)
            and math.isfinite(truncation) and 0 < truncation <= top):
        rng = "in (0, 1]" if top == 1.0 else "> 0"
        raise GanforgeError(f"truncation: must be a number {rng} for the {prior} prior (smaller = closer to the "
                            f"prior's centre; e.g. 0.7), got {truncation!r}")


@torch.no_grad()
def sample_prior(n: int, z_dim: int, prior: str, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", truncation: float | None = None) -> Tensor:
    """Latents [n, z_dim] from the prior named `prior`, optionally truncated (see the module docstring)."""
    p = PRIORS.get(prior)
    if truncation is None:
        return p.sample(n, z_dim, generator, device)
    check_truncation(truncation, prior)
    return p.truncated(n, z_dim, float(truncation), generator, device)
