"""Adversarial losses as pure functions of D's logits (named honestly).

Each entry gives `d(real_logits, fake_logits, smoothing)` and `g(real_logits, fake_logits)`, both returning a
scalar mean; G's loss sees both logits so that relativistic losses are one entry like the others (the
objective computes D(real) in G's step only for losses with `g_uses_real`). With D(x) = sigmoid(l):
  minimax        D: -log D(x) - log(1 - D(G(z)))    G:  log(1 - D(G(z))) = -softplus(l_f)  (Goodfellow et al. 2014,
                 the original *saturating* game; its G gradient vanishes when D confidently rejects fakes)
  nonsaturating  D: as minimax                      G: -log D(G(z)) = softplus(-l_f)      (the paper's practical fix)
  wasserstein    D: E[l_f] - E[l_r] (+ gradient penalty, lambda = 10; Gulrajani et al. 2017)   G: -E[l_f]
  hinge          D: E[relu(1 - l_r)] + E[relu(1 + l_f)]   G: -E[l_f]         (Lim & Ye 2017; Miyato et al. 2018)
  least-squares  D: 1/2 E[(l_r - 1)^2] + 1/2 E[l_f^2]     G: 1/2 E[(l_f - 1)^2]         (Mao et al. 2017, a=0, b=1, c=1)
  relativistic   D: E[softplus(l_f - l_r)] over pairs      G: E[softplus(l_r - l_f)]    (RpGAN: Jolicoeur-Martineau
                 2019; Huang et al. 2024 pair it with R1 + R2); real and fake of one minibatch are paired by index
  relativistic-average  D: E[softplus(-(l_r - mean l_f))] + E[softplus(l_f - mean l_r)]   G: real and fake swapped
                 (RaGAN, Jolicoeur-Martineau 2019; ESRGAN); the means are over the minibatch
One-sided label smoothing (Salimans et al. 2016) replaces the real target 1 by 1 - s.

`e(real_pair_logits, fake_pair_logits)` is the encoder's loss in a BiGAN/ALI (model.encoder): D judges pairs,
(x, E(x)) is the "real" pair and (G(z), z) the "fake" one, and E plays G's game mirrored: it wants D to call
its pair fake.
  minimax: log D(x, E(x)) = -softplus(-l_r); with G's term, G and E minimise exactly +V, the value of the
  game (D's loss is -V); nonsaturating: -log(1 - D(x, E(x))) = softplus(l_r); wasserstein, hinge: E[l_r];
  least-squares: 1/2 E[l_r^2] (E's target is the fake label, 0).

A loss with options of its own registers them (`LOSSES.register(name, options=Dataclass)`); the objective then
passes them to d, g and e as keyword arguments.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry

Tensor = torch.Tensor


@dataclass(frozen=True)
class AdversarialLoss:
    d: Callable[..., Tensor]                 # (real_logits, fake_logits, smoothing, **options) -> scalar
    g: Callable[..., Tensor]                 # (real_logits or None, fake_logits, **options) -> scalar
    e: Callable[..., Tensor] | None = None   # (real_pair_logits, fake_pair_logits, **options): the encoder's loss
    default_gp: float = 0.0         # gradient-penalty weight used when loss.gp_weight = -1
    smoothing: bool = True          # whether one-sided label smoothing is defined for this loss
    probability: bool = True        # whether sigmoid(logit) is D's probability that x is real
    g_uses_real: bool = False       # g needs D's logits on real data (relativistic losses)


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _bce_d(real: Tensor, fake: Tensor, s: float) -> Tensor:
    # BCE with target (1 - s) on real, 0 on fake: -(1-s) log s(l) - s log(1 - s(l)) - log(1 - s(l_f))
    real_term = F.softplus(-real) if s == 0 else (1 - s) * F.softplus(-real) + s * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


LOSSES.register("minimax", doc="the original saturating game: G minimises log(1 - D(G(z)))")(AdversarialLoss(
    d=_bce_d, g=lambda real, fake: -F.softplus(fake).mean(), e=lambda real, fake: -F.softplus(-real).mean()))
LOSSES.register("nonsaturating", doc="G minimises -log D(G(z)) (Goodfellow et al.'s practical fix)")(
    AdversarialLoss(d=_bce_d, g=lambda real, fake: F.softplus(-fake).mean(),
                    e=lambda real, fake: F.softplus(real).mean()))
LOSSES.register("wasserstein", doc="WGAN critic with gradient penalty (lambda 10 unless loss.gp_weight)")(
    AdversarialLoss(d=lambda real, fake, s: fake.mean() - real.mean(), g=lambda real, fake: -fake.mean(),
                    e=lambda real, fake: real.mean(), default_gp=10.0, smoothing=False, probability=False))
LOSSES.register("hinge", doc="hinge D (margin 1), G maximises D's logit (SNGAN, BigGAN)")(AdversarialLoss(
    d=lambda real, fake, s: F.relu(1 - real).mean() + F.relu(1 + fake).mean(), g=lambda real, fake: -fake.mean(),
    e=lambda real, fake: real.mean(), smoothing=False, probability=False))
LOSSES.register("least-squares", doc="LSGAN, targets a=0, b=1, c=1 (Mao et al. 2017)")(AdversarialLoss(
    d=lambda real, fake, s: 0.5 * ((real - (1 - s)) ** 2).mean() + 0.5 * (fake ** 2).mean(),
    g=lambda real, fake: 0.5 * ((fake - 1) ** 2).mean(), e=lambda real, fake: 0.5 * (real ** 2).mean(),
    probability=False))
LOSSES.register("relativistic", doc="RpGAN: softplus of the paired logit difference (Jolicoeur-Martineau 2019)")(
    AdversarialLoss(d=lambda real, fake, s: F.softplus(fake - real).mean(),
                    g=lambda real, fake: F.softplus(real - fake).mean(),
                    smoothing=False, probability=False, g_uses_real=True))


def _ra(a: Tensor, b: Tensor) -> Tensor:
    """RaGAN's loss for the side whose logits `a` should exceed the average of `b`'s."""
    return F.softplus(-(a - b.mean())).mean() + F.softplus(b - a.mean()).mean()


LOSSES.register("relativistic-average", doc="RaGAN: each logit against the other side's batch mean")(
    AdversarialLoss(d=lambda real, fake, s: _ra(real, fake), g=lambda real, fake: _ra(fake, real),
                    smoothing=False, probability=False, g_uses_real=True))
