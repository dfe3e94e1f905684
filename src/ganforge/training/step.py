"""One training step: train.d_steps discriminator updates, one generator update, the EMA.

Shared by the loop and benchmarks/throughput.py. No host synchronisation: statistics go by name into a
device-side accumulator (ganforge.utils.stats.Stats).
"""
from __future__ import annotations

from ..data import to_model_range
from ..models import one_hot_tokens, sample_prior
from ..schedules import gamma_multiplier, lr_multiplier, noise_std
from ..utils import distributed as dist
from ..utils.stats import Stats
from .ema import ema_beta, ema_update
from .state import TrainState


def train_step(s: TrainState, stats: Stats) -> None:
    """Advance `s` by one step (s.nimg grows by batch * d_steps real images)."""
    t, m, o = s.cfg.train, s.cfg.model, s.cfg.optim
    clock = max(s.sched_nimg, s.nimg)  # schedules follow the schedule clock (training.budget), not the image count
    sigma = noise_std(t.noise_schedule, t.noise_std, t.noise_kimg, clock)
    if o.lr_schedule != "constant":  # plain Python floats: no host sync
        mult = lr_multiplier(o.lr_schedule, o.lr_kimg, o.lr_final, clock)
        for opt, lr in ((s.opt_g, o.g_lr), (s.opt_d, o.d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * mult
    lo = s.cfg.loss
    gamma = gamma_multiplier(lo.gamma_schedule, lo.gamma_kimg, lo.gamma_final, clock)
    anneal = getattr(s.G, "anneal", None)
    if anneal is not None:  # a Gumbel-softmax G: its inverse temperature on the schedule clock (models/textgan.py)
        anneal(clock, t.kimg)
    if getattr(s.G, "autoencoder_loss", None) is not None and autoencoder_step(s, stats):
        return  # a latent text GAN's warm-up: only its autoencoder trains
    # Discriminator: k steps, each on a fresh real batch and fresh latents (and, conditional, the real batch's
    # labels and labels for the fakes drawn from the data's class frequencies).
    s.D.requires_grad_(True)
    fake, c_real, c_fake = None, None, None
    for i in range(t.d_steps):
        if m.conditional:
            x, c_real = s.sampler.next_labeled()
        else:
            x = s.sampler.next()
        real = to_model_range(x, s.kind)
        if s.kind == "text":  # ids -> what D judges of G's output (R1, GP and noise act on it): one-hots
            codes = getattr(s.G, "real_codes", None)  # [B, L, V], or a latent family's codes [B, code_dim]
            real = one_hot_tokens(real, m.options["vocab"]) if codes is None else codes(real)
        z = dist.local_slice(sample_prior(t.batch, m.z_dim, m.prior, s.gen, real.device))
        if m.conditional:
            c_fake = s.sample_classes(t.batch)
        s.opt_d.zero_grad(set_to_none=True)
        due = (s.nimg // t.batch + i) % lo.reg_interval == 0  # lazy R1/R2: every reg_interval-th D step, x interval
        fake = s.objective.d_phase(real, z, stats, sigma, s.gen, keep_fake=t.reuse_fakes and i == t.d_steps - 1,
                                   reg_scale=gamma * lo.reg_interval if due else 0.0, c_real=c_real, c_fake=c_fake)
        dist.average_grads(s.D)
        s.opt_d.step()
    # Generator: one step; D's weights are frozen so no gradient is computed for them. With
    # train.reuse_fakes it trains on the last D step's fakes (G's weights have not changed since), which
    # saves one forward pass of G per step; otherwise on fresh latents.
    s.D.requires_grad_(False)
    if fake is None:
        z = dist.local_slice(sample_prior(t.batch, m.z_dim, m.prior, s.gen, s.sampler.device))
        if m.conditional:
            c_fake = s.sample_classes(t.batch)
    s.opt_g.zero_grad(set_to_none=True)
    s.objective.g_phase(z, stats, sigma, s.gen, fake=fake, real=real, c_fake=c_fake, c_real=c_real)
    dist.average_grads(s.G)
    s.opt_g.step()
    s.nimg += t.batch * t.d_steps  # real images shown to D, over all processes
    aug = s.objective.augment
    if aug is not None and aug.adaptive and (s.nimg // (t.batch * t.d_steps)) % aug.interval == 0:
        aug.adjust(max(clock, s.nimg))  # ADA: every augment.interval steps, by the images the clock moved
    ema_update(s.G_ema, s.G, ema_beta(t.batch, t.ema_kimg, t.ema_rampup, max(clock, s.nimg)))


def autoencoder_step(s: TrainState, stats: Stats) -> bool:
    """A latent text GAN (models/arae.py): one step of its autoencoder on a fresh real batch, with G's optimiser
    (the autoencoder's weights are G's; the GAN's G-step never reaches them). Returns True during the warm-up
    (model.ae_kimg on the schedule clock, so a --minutes budget scales it), when this is the whole training step:
    s.nimg grows by the batch the autoencoder saw."""
    t = s.cfg.train
    clock = max(s.sched_nimg, s.nimg)  # the warm-up is a schedule: under --minutes it follows the budget's clock
    if s.G.trains_autoencoder(clock):
        s.opt_g.zero_grad(set_to_none=True)
        with s.objective.autocast():
            loss = s.G.autoencoder_loss(s.sampler.next(), s.gen)
        loss.backward()
        dist.average_grads(s.G)
        s.opt_g.step()
        stats.add("ae_loss", loss)
    if s.G.gan_started(clock):
        return False
    s.nimg += t.batch
    ema_update(s.G_ema, s.G, ema_beta(t.batch, t.ema_kimg, t.ema_rampup, max(clock, s.nimg)))
    return True
