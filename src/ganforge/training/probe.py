"""A short measured speed probe: how many training images per second this machine reaches with a configuration.

Budget-aware presets (`train.fit_budget`, ganforge.recipes.fit_to_budget) choose their width and batch from it
under `--minutes`: the probe builds the configuration's training state from scratch, runs a few warm-up steps
(allocations, oneDNN's kernel choice), then real training steps for `seconds`, and throws the state away. The run
that follows builds its own state from the same seeds, so a probe changes nothing but the choice. Its time is
taken out of the budget (ganforge.training.loop).
"""
from __future__ import annotations

import copy
import time

import torch

from ..config import Config, set_key
from ..data import Data
from ..utils.stats import Stats
from .state import setup
from .step import train_step

WARMUP_STEPS = 2
MIN_STEPS = 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def probe_speed(cfg: Config, data: Data, device: torch.device, changes: dict | None = None,
                seconds: float = 1.0) -> float:
    """Training images per second of `cfg` with `changes` ({key: value}) applied, measured on `device` for
    `seconds` (and at least MIN_STEPS steps); the rule's length is ganforge.recipes.probe_seconds."""
    cfg = copy.deepcopy(cfg)
    for key, value in (changes or {}).items():
        set_key(cfg, key, value, where="speed probe")
    rng = torch.get_rng_state()
    state = setup(cfg, data, device)
    try:
        stats = Stats()
        for _ in range(WARMUP_STEPS):
            train_step(state, stats)
        _sync(device)
        n0, t0 = state.nimg, time.perf_counter()
        steps = 0
        while steps < MIN_STEPS or time.perf_counter() - t0 < seconds:
            train_step(state, stats)
            steps += 1
        _sync(device)
        return (state.nimg - n0) / (time.perf_counter() - t0)
    finally:
        state.sampler.close()
        torch.set_rng_state(rng)  # setup() seeds the global generator; the run seeds it again itself
