"""The objective: the ONE place that runs the adversarial losses and calls backward().

Models compute, the objective differentiates, the loop steps (StyleGAN2-ADA's loss.py split). Each phase reports
its statistics by name into a device-side accumulator (`stats.add(name, tensor)`, ganforge.utils.stats), so
the loop never synchronises with the host.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..models.base import join
from ..utils.rng import randn_local
from .adversarial import LOSSES, AdversarialLoss
from .penalties import gradient_penalty, r1_penalty

Tensor = torch.Tensor


def pack(x: Tensor, m: int) -> Tensor:
    """PacGAN packing (Lin et al. 2018): m consecutive samples become one D input, stacked along channels."""
    if m == 1:
        return x
    return x.reshape(x.shape[0] // m, x.shape[1] * m, *x.shape[2:])


def instance_noise(x: Tensor, std: float, gen: torch.Generator | None) -> Tensor:
    """Instance noise (Sonderby et al. 2016): x + N(0, std^2), each rank's slice of one global draw."""
    if std <= 0:
        return x
    return x + std * randn_local(tuple(x.shape), gen, x.device, x.dtype)


@dataclass
class Objective:
    G: Callable[[Tensor], Tensor]          # possibly compiled forward of G
    D: Callable[[Tensor], Tensor]          # possibly compiled forward of D
    D_eager: Callable[[Tensor], Tensor]    # plain D module: double-backward penalties run here
    loss: AdversarialLoss
    smoothing: float
    gp_weight: float
    r1_gamma: float
    pack: int
    autocast: Callable[[], contextlib.AbstractContextManager]
    encode: Callable[[Tensor], Tensor] | None = None  # BiGAN / ALI: E; D then judges join(x, z) pairs
    options: dict[str, Any] = field(default_factory=dict)  # the loss's own options (keyword arguments)
    r2_gamma: float = 0.0
    augment: Any = None  # ganforge.augment.Augment: applied to everything D judges, real and fake, both phases
    latent_weight: float = 0.0  # BiGAN + latent regression: w * |E(G(z)) - z|^2 / z_dim (G and E)
    cycle_weight: float = 0.0   # BiGAN + ALICE's cycle: w * |G(E(x)) - x|^2 / d on real x (G and E)

    @classmethod
    def from_config(cls, cfg, G, D, D_eager, autocast, encode=None, augment=None) -> "Objective":
        loss = LOSSES.get(cfg.loss.name)
        gp = loss.default_gp if cfg.loss.gp_weight < 0 else cfg.loss.gp_weight
        return cls(G=G, D=D, D_eager=D_eager, loss=loss, smoothing=cfg.loss.label_smoothing, gp_weight=gp,
                   r1_gamma=cfg.loss.r1_gamma, pack=cfg.model.pack, autocast=autocast, encode=encode,
                   options=dict(cfg.loss.options), r2_gamma=cfg.loss.r2_gamma, augment=augment,
                   latent_weight=cfg.loss.latent_weight, cycle_weight=cfg.loss.cycle_weight)

    def _g(self, z: Tensor, c: Tensor | None) -> Tensor:
        return self.G(z) if c is None else self.G(z, c)

    def _aug(self, x: Tensor, gen: torch.Generator | None) -> Tensor:
        return x if self.augment is None else self.augment(x, gen)

    @staticmethod
    def _d(D, x: Tensor, c: Tensor | None) -> Tensor:
        return D(x) if c is None else D(x, c)

    def d_phase(self, real: Tensor, z: Tensor, stats, noise_std: float = 0.0,
                gen: torch.Generator | None = None, keep_fake: bool = False, reg_scale: float = 1.0,
                c_real: Tensor | None = None, c_fake: Tensor | None = None) -> Tensor | None:
        """Accumulate D's gradients for one minibatch: real [B, ...] in model range, z [B, z_dim].

        keep_fake: run G(z) with its graph and return the fakes, so that the generator step can reuse
        them instead of running G again (D only ever sees them detached). Otherwise G runs without a graph.
        reg_scale: multiplies the R1/R2 weights (lazy regularisation: interval on due steps, 0 on the others;
        times the gamma schedule's factor). c_real, c_fake: class labels int64 [B] (model.conditional).
        """
        r1 = self.r1_gamma * reg_scale
        r2 = self.r2_gamma * reg_scale
        with self.autocast():
            with torch.set_grad_enabled(keep_fake):
                fake = self._g(z, c_fake)
            real_in = instance_noise(real, noise_std, gen)
            fake_in = instance_noise(fake.detach(), noise_std, gen).to(real_in.dtype)
            if self.encode is not None:  # BiGAN: the real pair is (x, E(x)), the fake pair (G(z), z)
                with torch.no_grad():
                    code = self.encode(real)
                real_in, fake_in = join(real_in, code), join(fake_in, z).to(real_in.dtype)
            D_real, D_fake = self.D, self.D
            if r1 > 0:  # R1 differentiates D(real) twice: that pass must run eagerly
                real_in = real_in.detach().requires_grad_(True)
                D_real = self.D_eager
            if r2 > 0:  # R2, the same on generated data (Mescheder et al. 2018; Huang et al. 2024)
                fake_in = fake_in.detach().requires_grad_(True)
                D_fake = self.D_eager
            # R1/R2 differentiate with respect to the images before augmentation (through it), as ADA does
            real_logits = self._d(D_real, pack(self._aug(real_in, gen), self.pack), c_real).float()
            fake_logits = self._d(D_fake, pack(self._aug(fake_in, gen), self.pack), c_fake).float()
            loss = self.loss.d(real_logits, fake_logits, self.smoothing, **self.options)
            penalty = torch.zeros((), device=real.device)
            if self.gp_weight > 0:  # on interpolates, judged with the real labels
                penalty = penalty + self.gp_weight * gradient_penalty(
                    lambda x: self._d(self.D_eager, x, c_real), pack(real_in.detach(), self.pack),
                    pack(fake_in.detach(), self.pack), gen)
            if r1 > 0:
                r1_value = r1_penalty(real_logits, real_in)
                penalty = penalty + 0.5 * r1 * r1_value
                stats.add("r1", r1_value)
            if r2 > 0:
                r2_value = r1_penalty(fake_logits, fake_in)
                penalty = penalty + 0.5 * r2 * r2_value
                stats.add("r2", r2_value)
        (loss + penalty).backward()
        with torch.no_grad():
            rl, fl = real_logits.detach(), fake_logits.detach()
            stats.add("loss_d", loss)
            stats.add("penalty", penalty)
            stats.add("d_real_logit", rl.mean())
            stats.add("d_fake_logit", fl.mean())
            if self.loss.probability:
                stats.add("d_real", torch.sigmoid(rl).mean())
                stats.add("d_fake", torch.sigmoid(fl).mean())
            stats.add("d_real_sign", rl.sign().mean())  # ADA's overfitting signal r_t (and the health alarm's)
            stats.add("d_fake_sign", fl.sign().mean())  # the alarm's guard: D's sign means something
            if self.augment is not None:
                self.augment.observe(rl)
                stats.add("aug_p", self.augment.p)
        return fake if keep_fake else None

    def g_phase(self, z: Tensor | None, stats, noise_std: float = 0.0, gen: torch.Generator | None = None,
                fake: Tensor | None = None, real: Tensor | None = None, c_fake: Tensor | None = None,
                c_real: Tensor | None = None) -> None:
        """Accumulate G's gradients for one minibatch of latents z [B, z_dim], or for fakes G(z) that
        d_phase(keep_fake=True) already computed with their graph (z is then needed only with an encoder).
        `real` (a real minibatch in model range) is used by losses that compare with real data and, with an
        encoder (BiGAN), for E's loss: E plays against D with loss.e."""
        with self.autocast():
            made = self._g(z, c_fake) if fake is None else fake
            fake = instance_noise(made, noise_std, gen)
            if self.encode is not None:
                fake = join(fake, z)
            fake_logits = self._d(self.D, pack(self._aug(fake, gen), self.pack), c_fake).float()
            real_logits, extra = None, torch.zeros((), device=fake.device)
            if self.encode is not None:
                real_in = instance_noise(real, noise_std, gen)
                code = self.encode(real)
                real_logits = self.D(join(real_in, code).to(fake.dtype)).float()
                if self.latent_weight > 0:  # E(G(z)) ~ z: E learns G's own pairs, G keeps z recoverable
                    latent = (self.encode(made).float() - z.float()).pow(2).mean()
                    extra = extra + self.latent_weight * latent
                    stats.add("latent_mse", latent)
                if self.cycle_weight > 0:   # G(E(x)) ~ x (ALICE, Li et al. 2017)
                    cycle = (self._g(code, None).float() - real.float()).pow(2).mean()
                    extra = extra + self.cycle_weight * cycle
                    stats.add("cycle_mse", cycle)
            elif self.loss.g_uses_real:
                with torch.no_grad():  # D's verdict on real data is a constant for G
                    real_in = self._aug(instance_noise(real, noise_std, gen), gen)
                    real_logits = self._d(self.D, pack(real_in, self.pack), c_real).float()
            loss = self.loss.g(real_logits, fake_logits, **self.options)
            if self.encode is not None:
                loss = loss + self.loss.e(real_logits, fake_logits, **self.options)
        (loss + extra).backward()
        stats.add("loss_g", loss)
