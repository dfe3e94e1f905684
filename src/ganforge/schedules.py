"""Schedules of training hyper-parameters over images seen, built by name: the learning rates
(`optim.lr_schedule` over `optim.lr_kimg`), the R1/R2 weights (`loss.gamma_schedule` over `loss.gamma_kimg`,
the same schedules) and the instance-noise std (`train.noise_schedule` over `train.noise_kimg`; Sonderby et al.
2016, Arjovsky & Bottou 2017) and, for the Gumbel-softmax text generator, its inverse temperature
(`model.beta_schedule` over `model.beta_kimg`, rising to `model.beta_max`). A schedule is a factor f(t) of the
progress t in [0, 1] through its window; after the window it stays at f(1). `constant` needs no window.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from .registry import Registry


@dataclass(frozen=True)
class Schedule:
    factor: Callable[[float, float], float]   # (t in [0, 1], final factor) -> factor
    windowed: bool = True                     # needs a length (optim.lr_kimg / train.noise_kimg) > 0
    doc: str = ""


LR_SCHEDULES: Registry[Schedule] = Registry("learning-rate schedule")
NOISE_SCHEDULES: Registry[Schedule] = Registry("noise schedule")

_constant = Schedule(lambda t, final: 1.0, windowed=False, doc="no change")
_linear = Schedule(lambda t, final: 1.0 + (final - 1.0) * t, doc="straight line from 1 to the final factor")
_cosine = Schedule(lambda t, final: final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t)),
                   doc="half a cosine from 1 to the final factor")
# hold, then decay over the last HOLD_TAIL of the window: the "stable-decay" shape of budget-agnostic schedules
# (warmup-stable-decay, without the warm-up): under a --minutes budget the rate stays high for most of the time on
# any machine and is annealed in the budget's last fifth (benchmarks.md, "The same budget at a fraction of the speed")
HOLD_TAIL = 0.2
_hold_linear = Schedule(lambda t, final: 1.0 if t <= 1 - HOLD_TAIL
                        else 1.0 + (final - 1.0) * (t - 1 + HOLD_TAIL) / HOLD_TAIL, doc="1 for the first 80% of the window, then a straight line to the final factor")
for _name, _s in (("constant", _constant), ("linear", _linear), ("cosine", _cosine), ("hold-linear", _hold_linear)):
    LR_SCHEDULES.register(_name)(_s)
    NOISE_SCHEDULES.register(_name)(_s)
# 100x decay over the window (0.01^t), then 0: a smooth "temperature" that ends exactly at zero
NOISE_SCHEDULES.register("exponential")(Schedule(lambda t, final: 0.01 ** t if t < 1 else 0.0,
                                                 doc="100x decay over the window (0.01^t), then 0"))


def _progress(kimg: float, cur_nimg: int) -> float:
    return min(cur_nimg / (kimg * 1000.0), 1.0)


def lr_multiplier(schedule: str, kimg: float, final: float, cur_nimg: int) -> float:
    """Learning-rate factor: 1 -> `final` over `kimg` thousand images, then `final`."""
    s = LR_SCHEDULES.get(schedule)
    return s.factor(_progress(kimg, cur_nimg), final) if s.windowed else 1.0


def noise_std(schedule: str, std: float, kimg: float, cur_nimg: int) -> float:
    """Instance-noise std: `std` decaying to 0 over `kimg` thousand images (except `constant`)."""
    if std <= 0:
        return 0.0
    s = NOISE_SCHEDULES.get(schedule)
    return std * s.factor(_progress(kimg, cur_nimg), 0.0) if s.windowed else std


def gamma_multiplier(schedule: str, kimg: float, final: float, cur_nimg: int) -> float:
    """Factor of the R1/R2 weights: 1 -> `final` over `kimg` thousand images (R3GAN anneals them 10x)."""
    return lr_multiplier(schedule, kimg, final, cur_nimg)

# The inverse temperature beta of a Gumbel-softmax generator (RelGAN, Nie et al. 2019, Sec. 2.3: beta_n =
# beta_max^(n/N) for 'exp'): a schedule of the same kind as the noise annealing, rising from 1 to beta_max over its
# window; factor(t, beta_max) is beta itself.
BETA_SCHEDULES: Registry[Schedule] = Registry("inverse-temperature schedule")
BETA_SCHEDULES.register("exponential")(Schedule(lambda t, final: final ** t,
                                                doc="beta_max^t: RelGAN's 'exp', the one it recommends"))
BETA_SCHEDULES.register("linear")(Schedule(lambda t, final: 1.0 + (final - 1.0) * t, doc="1 + (beta_max - 1) t"))
BETA_SCHEDULES.register("constant")(Schedule(lambda t, final: final, windowed=False, doc="beta_max throughout"))


def inverse_temperature(schedule: str, beta_max: float, kimg: float, cur_nimg: int) -> float:
    """Gumbel-softmax inverse temperature: 1 -> `beta_max` over `kimg` thousand images, then `beta_max`."""
    s = BETA_SCHEDULES.get(schedule)
    return s.factor(_progress(kimg, cur_nimg) if s.windowed else 1.0, beta_max)
