"""Time budgets: with --minutes every schedule follows the schedule clock and completes within the budget."""
import json

import pytest

import ganforge
from ganforge.training.budget import Budget, advance_clock, start_budget, time_fraction
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint

from .conftest import TINY


class _State:
    def __init__(self, nimg=0, sched_nimg=0, train_time=0.0, budget=None):
        self.nimg, self.sched_nimg, self.train_time, self.budget = nimg, sched_nimg, train_time, budget


def test_without_a_budget_the_clock_is_the_image_count():
    s = _State(nimg=640)
    advance_clock(s, 1e9, 10_000, 0, None)
    assert s.sched_nimg == 640


def test_the_clock_takes_the_larger_of_images_and_time():
    s = _State(nimg=1000)
    start_budget(s, minutes=1.0)
    assert s.budget == Budget(60.0, 0.0, 0)
    advance_clock(s, 30.0, 10_000, 0, None)  # half the time, a tenth of the images
    assert s.sched_nimg == 5000
    s.nimg = 8000  # a fast machine: images run ahead of time
    advance_clock(s, 31.0, 10_000, 1, None)
    assert s.sched_nimg == 8000
    advance_clock(s, 10.0, 10_000, 2, None)  # the clock never goes back
    assert s.sched_nimg == 8000
    advance_clock(s, 60.0, 10_000, 3, None)  # the budget is spent: the schedule is complete
    assert s.sched_nimg == 10_000


def test_a_new_budget_spans_what_is_left_of_the_schedule():
    s = _State(nimg=2000, sched_nimg=4000, train_time=100.0)
    start_budget(s, minutes=2.0)
    assert s.budget == Budget(120.0, 100.0, 4000)
    advance_clock(s, 160.0, 10_000, 0, None)  # half of the new budget: half of the remaining 6000
    assert s.sched_nimg == 7000


def test_a_saved_budget_continues_and_a_finished_one_is_dropped():
    s = _State(train_time=50.0, budget=Budget(60.0, 0.0, 0))
    start_budget(s, minutes=None)
    assert s.budget is not None and time_fraction(s.budget, s.train_time) == pytest.approx(50 / 60)
    s = _State(train_time=70.0, budget=Budget(60.0, 0.0, 0))
    start_budget(s, minutes=None)
    assert s.budget is None


def test_a_budgeted_run_completes_its_schedules(tmp_path):
    """train.kimg far beyond what the budget allows: the lr still decays to its final value, the noise anneals
    to zero, and the log and checkpoint record the clock and the budget."""
    over = TINY + ["train.kimg=500", "optim.lr_schedule=linear", "optim.lr_kimg=500", "optim.lr_final=0.1",
                   "optim.g_lr=2e-4",
                   "train.noise_std=0.1", "train.noise_kimg=250", "train.tick_kimg=0.5"]
    run = ganforge.train("digits", overrides=over, out=tmp_path / "b", minutes=0.1, progress=False)
    ck = load_checkpoint(list_checkpoints(run)[-1])
    assert 0 < ck["nimg"] < 500_000 and ck["sched_nimg"] == 500_000
    assert ck["budget"]["seconds"] == pytest.approx(6.0) and ck["budget"]["from_nimg"] == 0
    lr_last = ck["opt_g"]["param_groups"][0]["lr"]
    ticks = [json.loads(line) for line in open(run / "log.jsonl") if '"tick"' in line]
    clocks = [r["sched_kimg"] for r in ticks]
    assert clocks == sorted(clocks) and clocks[-1] == 500
    # the last step ran after the last-but-one tick, so on a clock at least that far: its lr is at most the
    # schedule's value there, and at least the final one
    assert 2e-4 * 0.1 <= lr_last <= 2e-4 * (1 - 0.9 * clocks[-2] / 500) + 1e-12
    assert all(r["sched_kimg"] >= r["kimg"] for r in ticks)
    assert ticks[-1]["noise_std"] == 0.0
