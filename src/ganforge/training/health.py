"""Health alarms at ticks, beside the divergence stop: mode collapse, D overfitting, stalled progress.

Each alarm is raised at most once per run (the state is in checkpoints, so a resumed run does not repeat it),
printed with a suggested fix, logged as an `event: alarm` line in log.jsonl and listed in the report. None of
them stops training: the numbers behind them are noisy, and the user decides.

- mode collapse: the generated samples' diversity in the self-supervised features (the `diversity` tick metric:
  their mean pairwise distance over the real images') below `COLLAPSE`. A collapsed G repeats a few images; a
  healthy one sits near 1.
- D overfitting: E[sign D(x_real)] (ADA's r_t, Karras et al. 2020) above `OVERFIT` at `OVERFIT_TICKS` ticks in a
  row while E[sign D(G(z))] < 0: D is sure of every training image (and its sign is not a mere bias: at the start
  a D with a small positive bias gives every input, real or generated, the sign +1), the sign of memorising them;
  its feedback to G degrades. Only for losses whose logit sign means real / fake (not the Wasserstein critic or
  the relativistic pairing).
- stalled progress: the first distance-like tick metric (an FD, KID or KL: lower is better) has not improved on its
  best by `STALL_GAIN` for `STALL_TICKS` ticks.
"""
from __future__ import annotations

import math

COLLAPSE = 0.5
OVERFIT = 0.8
OVERFIT_TICKS = 2
STALL_TICKS = 10
STALL_GAIN = 0.01
_LOWER_IS_BETTER = ("fd", "fid", "kid", "kl")

FIXES = {
    "mode_collapse": "try model.mbstd=4 (D sees batch statistics), model.pack=2, a lower optim.g_lr, or "
                     "loss.name=relativistic with loss.r1/loss.r2 (the r3gan recipe)",
    "d_overfitting": "try augment.policy=color,translation,cutout with augment.adaptive=true, a stronger loss.r1, "
                     "or more data",
    "stalled": "the samples stopped improving: lower the learning rates (optim.lr_schedule=hold-linear), "
               "or stop here and keep the best checkpoint",
}


class Health:
    """The alarm state of a run (`state.extras["health"]`): which alarms fired, the watched metric's best."""

    def __init__(self, sign_meaningful: bool = True) -> None:
        self.sign_meaningful = sign_meaningful
        self.fired: list[str] = []
        self.best: float | None = None
        self.best_tick = 0
        self.overfit_run = 0

    def state_dict(self) -> dict:
        return dict(fired=list(self.fired), best=self.best, best_tick=self.best_tick, overfit_run=self.overfit_run)

    def load_state_dict(self, sd: dict) -> None:
        self.fired, self.best = list(sd.get("fired", [])), sd.get("best")
        self.best_tick, self.overfit_run = int(sd.get("best_tick", 0)), int(sd.get("overfit_run", 0))

    def check(self, record: dict) -> list[dict]:
        """The tick's record -> the alarms raised now: [{alarm, message, fix}] (each at most once per run)."""
        found = []
        metrics = record.get("metrics") or {}
        div = (metrics.get("diversity") or {}).get("diversity")
        if div is not None and math.isfinite(div) and div < COLLAPSE:
            found.append(("mode_collapse", f"mode collapse? the samples' diversity is {div:.2f} of the real "
                                           f"images' (self-supervised features; below {COLLAPSE})"))
        sign, fake_sign = record.get("d_real_sign"), record.get("d_fake_sign", -1.0)
        if self.sign_meaningful and sign is not None and math.isfinite(sign):
            self.overfit_run = self.overfit_run + 1 if sign > OVERFIT and fake_sign < 0 else 0
            if self.overfit_run >= OVERFIT_TICKS:
                found.append(("d_overfitting", f"D is overfitting: E[sign D(x_real)] = {sign:.2f} > {OVERFIT} at "
                                               f"{self.overfit_run} ticks in a row"))
        watched = _watched(metrics)
        if watched is not None:
            name, value = watched
            tick = int(record.get("tick", 0))
            if self.best is None or value < self.best * (1 - STALL_GAIN):
                self.best, self.best_tick = value, tick
            elif tick - self.best_tick >= STALL_TICKS:
                found.append(("stalled", f"progress stalled: {name} has not improved on its best ({self.best:.4g}, "
                                         f"tick {self.best_tick}) for {tick - self.best_tick} ticks"))
        out = []
        for alarm, message in found:
            if alarm not in self.fired:
                self.fired.append(alarm)
                out.append(dict(alarm=alarm, message=message, fix=FIXES[alarm]))
        return out


def _watched(metrics: dict) -> tuple[str, float] | None:
    """The first distance-like value of the tick metrics: (name, value)."""
    for values in metrics.values():
        for k, v in (values or {}).items():
            if isinstance(v, (int, float)) and math.isfinite(v) and k.split("_")[-1] in _LOWER_IS_BETTER:
                return k, float(v)
    return None
