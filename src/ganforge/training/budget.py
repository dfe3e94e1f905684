"""Time budgets: `--minutes M` means the same on every machine.

Every schedule of the run (learning-rate decay over optim.lr_kimg, the EMA ramp-up, instance-noise annealing,
the R1/R2 gamma schedule, the adaptive augmentation's speed, and train.kimg itself, the end) advances with a
*schedule clock* counted in images, `state.sched_nimg`, instead of the images actually seen. Without a budget the
clock is the image count. With a budget it is the larger of the image count and the time fraction of the
budget, mapped onto what was left of the schedule when the budget began:

    sched_nimg = max(nimg, from_nimg + (kimg * 1000 - from_nimg) * min(1, spent_s / budget_s))

so a budgeted run always ends with its schedules complete (learning rate decayed, noise annealed), however
slow the machine, and a fast machine that reaches train.kimg first simply ends there. The clock never goes
back; it is saved in checkpoints with the budget, and a resume continues both (`--minutes` on a resume starts
a new budget over what is left of the schedule).

With several processes the ranks must follow the same clock: they agree on the time every `AGREE_EVERY` steps
through a collective (the same steps where they agree on an early stop); in between the clock follows the
image count alone.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from ..utils import distributed as dist

AGREE_EVERY = 16  # steps between the ranks' agreement on the clock (a collective, so not every step)


@dataclass
class Budget:
    seconds: float    # the budget, in seconds of training time (ticks included)
    t0: float         # state.train_time when it began
    from_nimg: int    # the schedule clock when it began


def start_budget(state, minutes: float | None, spent_s: float = 0.0) -> None:
    """Set `state.budget` for this session: a new one for --minutes, the checkpoint's unfinished one otherwise.
    spent_s: seconds of the budget already used before training began (a budget-aware preset's speed probe)."""
    if minutes is not None:
        state.budget = Budget(max(60.0 * minutes - spent_s, 1.0), state.train_time, state.sched_nimg)
    elif state.budget is not None and time_fraction(state.budget, state.train_time) >= 1.0:
        state.budget = None  # a finished budget: the resumed run continues by images (train.kimg)


def time_fraction(budget: Budget, train_time: float) -> float:
    return min(max(train_time - budget.t0, 0.0) / budget.seconds, 1.0)


def advance_clock(state, train_time: float, total_nimg: int, step: int, device: torch.device) -> None:
    """Move state.sched_nimg forward to the image count and, with a budget, to the time's share of it."""
    clock = max(state.sched_nimg, state.nimg)
    b = state.budget
    if b is not None and (dist.world_size() == 1 or step % AGREE_EVERY == 0):
        if dist.world_size() > 1:  # every rank takes the largest time, so all follow one clock
            t = torch.tensor([train_time], dtype=torch.float64, device=device)
            dist.all_reduce_max(t)
            train_time = float(t.item())
        f = time_fraction(b, train_time)
        clock = max(clock, b.from_nimg + math.ceil((total_nimg - b.from_nimg) * f) if f < 1 else total_nimg)
    state.sched_nimg = clock


def seconds_left(state, train_time: float, total_nimg: int, img_per_s: float) -> float | None:
    """Estimated seconds to the end: to train.kimg at the current speed, or to the budget's end if sooner."""
    left = (total_nimg - state.nimg) / img_per_s if img_per_s > 0 else None
    if state.budget is not None:
        b = state.budget.seconds - (train_time - state.budget.t0)
        left = b if left is None else min(left, b)
    return None if left is None else max(left, 0.0)


def budget_state(state) -> dict | None:
    return None if state.budget is None else asdict(state.budget)


def load_budget(saved: dict | None) -> Budget | None:
    return None if not saved else Budget(float(saved["seconds"]), float(saved["t0"]), int(saved["from_nimg"]))
