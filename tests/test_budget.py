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


# ---- budget-aware presets: train.fit_budget -------------------------------------------------------------------

def _speeds(table):
    """A stub speed probe: img/s by (width, batch), recording the order of the calls."""
    calls = []

    def speed(changes):
        calls.append(changes)
        return table[(changes.get("model.g_width", 64), changes.get("train.batch", 128))]
    return speed, calls


def _fashion(**over):
    from ganforge.components import resolve
    return resolve("fashion", [f"{k}={v}" for k, v in over.items()])


FAST = {(64, 128): 2000.0, (64, 64): 1900.0, (32, 64): 5000.0, (32, 32): 4000.0, (16, 32): 8000.0}
SLOW = {(64, 128): 550.0, (64, 64): 540.0, (32, 64): 1350.0, (32, 32): 1130.0, (16, 32): 2300.0}


def test_a_fast_machine_keeps_the_preset_after_one_probe():
    from ganforge.recipes import fit_to_budget
    cfg = _fashion()
    speed, calls = _speeds(FAST)
    notes = fit_to_budget(cfg, set(), 10, speed)  # 2000 img/s * 600 s = 1.2M images, capped at 800k: 6250 steps
    assert len(calls) == 1 and (cfg.model.g_width, cfg.train.batch) == (64, 128)
    assert "the preset's own width and batch" in notes[0] and "6,250 G steps" in notes[0]


def test_a_slow_machine_takes_the_most_capable_candidate_that_makes_the_steps():
    from ganforge.recipes import BUDGET_STEPS, fit_to_budget
    cfg = _fashion()
    speed, calls = _speeds(SLOW)
    # 540 * 600 / 64 = 5063 steps < 6000; 1350 * 600 = 810k images, capped at train.kimg's 800k: 12,500 steps
    notes = fit_to_budget(cfg, set(), 10, speed)
    assert BUDGET_STEPS == 6000 and len(calls) == 3  # stops at the first candidate that makes the steps
    assert (cfg.model.g_width, cfg.model.d_width, cfg.train.batch) == (32, 32, 64)
    assert notes[0].startswith("model.g_width=32, model.d_width=32, train.batch=64: a 10-minute budget at 1,350 "
                               "img/s") and "12,500 G steps" in notes[0]


def test_when_no_candidate_makes_the_steps_the_one_with_the_most_steps_wins():
    from ganforge.recipes import fit_to_budget
    cfg = _fashion()
    speed, calls = _speeds(SLOW)
    notes = fit_to_budget(cfg, set(), 2, speed)  # 2 minutes: 1350*120/64 = 2531 steps; 1130*120/32 = 4238 steps
    assert len(calls) == 4 and (cfg.model.g_width, cfg.train.batch) == (32, 32)
    assert "no candidate reaches the 6,000 steps" in notes[0] and "4,238 G steps" in notes[0]
    # the last resort, a quarter of the width, is not probed: width 32 already makes LAST_RESORT_STEPS
    assert "; width 16 batch 32 not probed: width 32 batch 32 already makes 2,700 steps or more" in notes[0]


def test_the_last_resort_is_taken_when_no_other_candidate_makes_its_steps():
    """One minute on the slow machine: width 32 makes 2,119 steps, width 16 twice as many, and the rule takes it."""
    from ganforge.recipes import LAST_RESORT_STEPS, fit_to_budget
    cfg = _fashion()
    speed, calls = _speeds(SLOW)
    notes = fit_to_budget(cfg, set(), 1, speed)  # 1130*60/32 = 2119 steps < 2700; 2300*60/32 = 4312 at width 16
    assert LAST_RESORT_STEPS == 2700 and len(calls) == 5
    assert (cfg.model.g_width, cfg.model.d_width, cfg.train.batch) == (16, 16, 32)
    assert "width 32 batch 32 1,130 img/s; width 16 batch 32 2,300 img/s" in notes[0] and "4,312 G steps" in notes[0]
    assert "not probed" not in notes[0]


def test_the_candidates_go_down_to_width_16_and_batch_32():
    """Width and batch shrink together, most capable first, floored at BUDGET_MIN_WIDTH and BUDGET_MIN_BATCH; a
    candidate the floors make equal to an earlier one is not probed twice."""
    from ganforge.recipes import budget_candidates
    sizes = [(c["model.g_width"], c["model.d_width"], c["train.batch"]) for c in budget_candidates(_fashion(), set())]
    assert sizes == [(64, 64, 128), (64, 64, 64), (32, 32, 64), (32, 32, 32), (16, 16, 32)]
    sizes = [(c["model.g_width"], c["train.batch"])
             for c in budget_candidates(_fashion(**{"train.batch": 64}), set())]
    assert sizes == [(64, 64), (64, 32), (32, 32), (16, 32)]  # half the width, a quarter of 64: floored, once


def test_keys_the_user_set_are_kept():
    from ganforge.recipes import budget_candidates, fit_to_budget
    cfg = _fashion(**{"train.batch": 128})
    cands = budget_candidates(cfg, {"train.batch"})
    assert all("train.batch" not in c for c in cands) and len(cands) == 3  # widths 64, 32 and 16 only
    speed, _ = _speeds({**SLOW, (32, 128): 1400.0, (16, 128): 2600.0})
    fit_to_budget(cfg, {"train.batch"}, 1, speed)
    assert (cfg.model.g_width, cfg.train.batch) == (16, 128)
    cfg = _fashion(**{"model.g_width": 64, "model.d_width": 64})
    speed, _ = _speeds({**SLOW, (64, 32): 530.0})
    fit_to_budget(cfg, {"model.g_width", "model.d_width"}, 1, speed)  # the widths set: only the batch changes
    assert (cfg.model.g_width, cfg.train.batch) == (64, 32)


def test_probing_stops_once_the_probes_took_their_share_of_the_budget():
    """Large images on a CPU take seconds a step: after PROBE_TOTAL_SHARE of the budget no more candidates are
    probed, and the best of those measured wins."""
    from ganforge.recipes import PROBE_TOTAL_SHARE, fit_to_budget
    cfg = _fashion()
    now = [0.0]
    speed, calls = _speeds(SLOW)

    def slow_speed(changes):  # each probe takes 10% of a 1-minute budget
        now[0] += 0.1 * 60
        return speed(changes)
    notes = fit_to_budget(cfg, set(), 1, slow_speed, clock=lambda: now[0])
    assert PROBE_TOTAL_SHARE == 0.25 and len(calls) == 3  # 6 s, 12 s, then 18 s > 15 s: the rest is skipped
    assert (cfg.model.g_width, cfg.train.batch) == (32, 64)  # the most steps among the three probed
    assert "2 more candidate(s) not probed: the probes took 18 s, over 25% of the budget" in notes[0]
    cfg, now[0] = _fashion(), 0.0
    fit_to_budget(cfg, set(), 10, slow_speed, clock=lambda: now[0])  # 10% of 1 minute is 1% of 10
    assert len(calls) == 3 + 3 and (cfg.model.g_width, cfg.train.batch) == (32, 64)  # the third makes the steps


def test_the_folder_preset_follows_the_budget_rule(tmp_path):
    """`ganforge train DIR --minutes M`: the survey's choices, then the rule's, both recorded."""
    import numpy as np
    from PIL import Image
    d = tmp_path / "imgs"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), "L").save(d / f"{i:03d}.png")
    run = ganforge.train(str(d), overrides=["model.z_dim=8", "train.kimg=500", "train.precision=fp32",
                                            "train.metrics=[]", "train.device=cpu"],
                         out=tmp_path / "run", minutes=0.05, progress=False)
    choices = next(json.loads(line) for line in open(run / "log.jsonl") if '"preset"' in line)["choices"]
    assert any(c.startswith("folder ") for c in choices) and any("train.batch=" in c for c in choices)
    assert "-minute budget at" in choices[-1] and "probe: width 64 batch" in choices[-1]


def test_the_probe_measures_without_touching_the_run(tmp_path):
    """probe_speed trains a throw-away copy: the config and the global RNG are as before, the speed positive."""
    import torch

    from ganforge.components import resolve
    from ganforge.data import build_dataset
    from ganforge.training.probe import probe_speed
    cfg = resolve("digits", TINY)
    data = build_dataset(cfg.data)
    before = torch.get_rng_state()
    img_s = probe_speed(cfg, data, torch.device("cpu"), {"model.g_width": 4, "train.batch": 8}, seconds=0.05)
    assert img_s > 0 and torch.equal(torch.get_rng_state(), before)
    assert (cfg.model.g_width, cfg.train.batch) == (8, 16)


def test_a_budget_aware_run_records_its_choice_and_spends_the_probe_from_the_budget(tmp_path):
    over = [o for o in TINY if not o.startswith(("model.g_width", "model.d_width", "train.batch"))]
    run = ganforge.train("digits", overrides=over + ["train.fit_budget=true", "train.kimg=500",
                                                    "optim.lr_kimg=500"],
                         out=tmp_path / "fit", minutes=0.05, progress=False)
    events = [json.loads(line) for line in open(run / "log.jsonl")]
    choice = next(e for e in events if e["event"] == "preset")["choices"]
    assert len(choice) == 1 and "-minute budget at" in choice[0] and "probe: width" in choice[0]
    ck = load_checkpoint(list_checkpoints(run)[-1])
    assert 0 < ck["budget"]["seconds"] < 3.0  # 0.05 minutes = 3 s, less the probe's time
    saved = ck["config"]
    assert (saved["model"]["g_width"], saved["train"]["batch"]) in {(w, b) for w in (32, 16) for b in (64, 32)}
    # a resume keeps what was chosen (the config is the checkpoint's) and probes nothing
    again = ganforge.train(resume=run, overrides=["train.kimg=600", "optim.lr_kimg=600"], out=tmp_path / "more",
                           progress=False, minutes=0.02)
    assert load_checkpoint(list_checkpoints(again)[-1])["config"]["model"] == saved["model"]
    assert not any(e["event"] == "preset" for e in map(json.loads, open(again / "log.jsonl")))
