"""The training loop: one readable function, top to bottom (nanoGPT train.py, StyleGAN2-ADA training_loop.py).

  config + run directory -> data -> training state (`setup`, or a checkpoint) -> outputs ->
  repeat: `train_step` (k x D step, G step, EMA) ; every train.tick_kimg: `tick`
  until train.kimg is reached, the --minutes budget runs out, or Ctrl-C (all three end with a tick: a
  checkpoint and the exported generator).
Everything that is not the loop lives in its own file: state.py (what training advances and the checkpoint
schema), step.py, checkpoint.py, outputs.py (config.yaml, log sinks, sample grids, progress), device.py.
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path

import torch

from ..components import check_run_length, from_artefact, resolve, validate
from ..config import Config, apply_overrides, parse_override
from ..data import build_dataset, cache_dir, data_key
from ..data.text import heldout_part
from ..errors import GanforgeError
from ..metrics import check_metrics, evaluate
from ..recipes import fit_to_budget, probe_seconds
from ..sampling import draw_labels, export_generator, generate
from ..schedules import noise_std
from ..utils import distributed as dist
from ..utils.device import pick_device
from ..utils.stats import Stats
from .budget import advance_clock, seconds_left, start_budget
from .checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from .outputs import Outputs
from .probe import probe_speed
from .rundir import (check_free, claim_new_run_dir, claim_run_dir, remove_stale_temp_files, resume_target,
                     set_aside_newer)
from .signals import StopFlag
from .state import TrainState, setup
from .step import train_step

RESUME_FROZEN = ("data.", "model.")  # changing these would not be a continuation of the same run
STOP_AGREE_EVERY = 16  # steps between the ranks' agreement on an early stop (a collective, so not every step)
METRICS_SEED_OFFSET = 99  # tick metrics sample G from seed + this
TEXT_IN_LOG = 8  # text runs: decoded samples per tick record
LIVE_EVERY = 4  # steps between updates of the live progress display (it redraws at most once a second)


def train(config: Config | dict | str | None = None, *, overrides: list[str] | None = None,
          out: str | Path | None = None, resume: str | Path | None = None, minutes: float | None = None,
          progress: bool = True, allow_data_change: bool = False) -> Path:
    """Train a GAN; returns the run directory. `resume` continues a run exactly where it stopped (into `out`
    when given, leaving the source untouched); see training.rundir for where a run writes."""
    if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise GanforgeError(f"--minutes: must be a positive number of minutes, got {minutes!r}")
    dist.init()
    with contextlib.ExitStack() as held:  # the run directory's lock, released however the run ends
        # ---- config, device and data; the run directory claimed ------------------------------------
        ckpt, ckpt_path, src, run_dir, notes = None, None, None, None, []
        if resume is None:
            cfg = resolve(config, overrides, notes, minutes)  # notes: what a preset that looks at the data chose
            if out and dist.is_main():
                check_free(Path(out))  # at once; checked again under the lock, once the data is read
        else:
            ckpt_path, src, _ = resume_target(resume, out)
            run_dir = _claim(held, lambda: claim_new_run_dir(out, "run") if out else (src, claim_run_dir(src)))
            ckpt = load_checkpoint(ckpt_path)
            cfg = from_artefact(ckpt["config"], f"checkpoint {ckpt_path}")
            apply_overrides(cfg, overrides or [], frozen=RESUME_FROZEN,
                            why="data and model settings cannot change when resuming; start a new run instead")
            validate(cfg)
        check_run_length(cfg)
        _check_world_size(cfg)
        device = dist.device_for_rank(pick_device(cfg.train.device))
        data = build_dataset(cfg.data)
        check_metrics(cfg.train.metrics, data)  # a tick metric that cannot work on this data: say so now
        probe_s = 0.0
        if ckpt is None and minutes is not None and cfg.train.fit_budget:  # a budget-aware preset: measure, choose
            t0 = time.time()
            if dist.world_size() > 1:  # ranks would measure (and choose) apart: multi-GPU keeps the preset
                notes.append("train.fit_budget: off with several processes; the preset's width and batch are kept")
            else:
                user_keys = {parse_override(o)[0] for o in overrides or []}
                notes.extend(fit_to_budget(cfg, user_keys, minutes, lambda changes: probe_speed(
                    cfg, data, device, changes, probe_seconds(minutes))))
                validate(cfg)
            probe_s = time.time() - t0  # the probe's time is the budget's: the run gets what is left
        if notes and progress and dist.is_main():
            print("\n".join([f"{cfg.preset or 'the'} preset chose (override any choice with --set KEY=VALUE):"] +
                            [f"  {n}" for n in notes]), flush=True)
        if run_dir is None:
            run_dir = _claim(held, lambda: claim_new_run_dir(out, cfg.preset or "run"))

        # ---- the training state: nothing is written before all of it checks out --------------------
        state = setup(cfg, data, device)
        held.callback(state.sampler.close)
        total_nimg = int(round(cfg.train.kimg * 1000))
        if ckpt is not None:
            state.load_state_dict(ckpt, f"checkpoint {ckpt_path}", allow_data_change)
        start_budget(state, minutes, probe_s)  # the schedule clock (training.budget): --minutes, or the saved one
        if ckpt is not None:
            if state.sched_nimg >= total_nimg:
                raise GanforgeError(f"this run already reached train.kimg={cfg.train.kimg:g} (its schedule is "
                                    "complete); "
                                    f"extend it with `ganforge train --resume {resume} --set train.kimg=<more>`")
            if run_dir == src:
                set_aside_newer(run_dir, ckpt_path)  # a resume from an older checkpoint starts a new branch

        # ---- the loop ------------------------------------------------------------------------------
        outputs = held.enter_context(Outputs.open(run_dir, cfg, data, device, state.nimg, progress,
                                                  resumed_from=None if ckpt_path is None else
                                                  ckpt_path.name if run_dir == src else str(ckpt_path)))
        if notes and dist.is_main():
            outputs.event({"event": "preset", "kimg": state.nimg / 1000, "choices": notes})
        if data.kind == "text" and cfg.train.metrics and dist.is_main():  # read once, not at every tick
            outputs.heldout = heldout_part(cfg.data, data)
        stats = Stats()
        tick_nimg = cfg.train.tick_kimg * 1000
        step, tick_start_nimg, tick_start = 0, state.nimg, time.time()
        dist.barrier()
        with StopFlag() as stop:
            while True:
                advance_clock(state, state.train_time + time.time() - tick_start, total_nimg, step, device)
                stopping = state.sched_nimg >= total_nimg or _early_stop(stop, step, device)
                if stopping or state.nimg - tick_start_nimg >= tick_nimg:
                    now = time.time()  # a tick's own time counts in the next one's: train_time is all the time
                    if state.nimg > tick_start_nimg or state.tick == 0:  # progress since the last tick, or none
                        tick(state, stats, outputs, run_dir, now - tick_start, state.nimg - tick_start_nimg)
                    tick_start_nimg, tick_start = state.nimg, now
                if stopping:
                    break
                train_step(state, stats)
                step += 1
                if outputs.progress.rich is not None and step % LIVE_EVERY == 0:  # host counters only: no sync
                    _live(state, outputs, time.time() - tick_start, state.nimg - tick_start_nimg, total_nimg)
    dist.barrier()  # every rank has closed its outputs and data: the process group is torn down together
    if stop.set and dist.is_main():
        print(f"stopped by {stop.name} at {state.nimg / 1000:.2f} kimg; checkpoint and generator saved in {run_dir}; "
              f"continue with `ganforge train --resume {run_dir}`")
    elif state.budget is not None and state.nimg < total_nimg and progress and dist.is_main():
        print(f"the --minutes budget is spent: {state.nimg / 1000:.1f} of train.kimg={cfg.train.kimg:g} kimg seen, "
              "with every schedule completed on the schedule clock")
    return run_dir


def tick(state: TrainState, stats: Stats, outputs: Outputs, run_dir: Path, elapsed: float, images: int) -> None:
    """Every train.tick_kimg and at the end: the tick's record and a health check; then, on rank 0 and in this
    order, the checkpoint and the exported generator (so that nothing after them can lose the tick), the
    sample grid, the tick metrics (a failure is a warning and a `metrics_error` in the record: nothing is lost and
    training continues), and the record to log.jsonl / TensorBoard / the progress line."""
    cfg, t = state.cfg, state.cfg.train
    state.train_time += elapsed
    state.tick += 1
    record = {"event": "tick", "tick": state.tick, "kimg": round(state.nimg / 1000, 4), "nimg": state.nimg,
              "time_s": round(state.train_time, 2), "sched_kimg": round(state.sched_nimg / 1000, 4),
              "precision": state.precision,
              "img_per_s": images / max(elapsed, 1e-9),
              "noise_std": noise_std(t.noise_schedule, t.noise_std, t.noise_kimg, state.sched_nimg), **stats.read()}
    if hasattr(state.G, "beta"):  # a Gumbel-softmax G: its inverse temperature now
        record["beta"] = round(float(state.G.beta), 4)
    _check_finite(state, record, outputs, run_dir)
    failure = None
    if dist.is_main():
        save_checkpoint(run_dir, cfg, state)
        export_generator(run_dir, state.G_ema, cfg, outputs.data, state.nimg)
        grid = outputs.samples(state.G_ema, state.tick, state.nimg, cfg.model.prior)
        if isinstance(grid, list):  # text: a few of the tick's decoded samples go into its record (log.jsonl)
            record["samples"], grid = grid[:TEXT_IN_LOG], None
        if t.metrics:
            try:
                record["metrics"] = _tick_metrics(cfg, state, outputs)
            except GanforgeError as e:
                failure = str(e)
                record["metrics_error"] = failure
        for alarm in state.extras["health"].check(record):
            outputs.event({"event": "alarm", "kimg": record["kimg"], "tick": state.tick, **alarm})
            outputs.progress.message(f"alarm at {record['kimg']:g} kimg: {alarm['message']}; {alarm['fix']}")
        outputs.tick(record, grid)
    if failure is not None:  # the tick is saved: a failing metric costs nothing but its value; training goes on
        warnings.warn(f"tick metrics failed at {state.nimg / 1000:.2f} kimg ({failure}); training continues and "
                      "this tick's checkpoint and generator are saved (metrics_error in log.jsonl); set "
                      "train.metrics=[] to skip them", stacklevel=2)
    dist.barrier()


def _live(state: TrainState, outputs: Outputs, elapsed: float, images: int, total_nimg: int) -> None:
    speed = images / elapsed if elapsed > 0 else 0.0
    outputs.progress.live(state.nimg / 1000, state.sched_nimg / 1000, speed,
                          seconds_left(state, state.train_time + elapsed, total_nimg, speed))


def _tick_metrics(cfg: Config, state: TrainState, outputs: Outputs) -> dict:
    device, seed, n = state.sampler.device, cfg.train.seed + METRICS_SEED_OFFSET, cfg.train.metrics_n
    labels = None if state.class_freq is None else draw_labels(n, state.class_freq.cpu(), seed)
    fake = generate(state.G_ema, cfg.model, state.kind, n, seed=seed, device=device, labels=labels)
    res = evaluate(fake, outputs.data, cfg.train.metrics, n=n, seed=cfg.train.seed, device=str(device),
                   data_key=data_key(cfg.data), options=cfg.metrics, fake_labels=labels, heldout=outputs.heldout,
                   cache=cache_dir(cfg.data.cache_dir))  # feature networks live with the data's cache
    return {name: r.values for name, r in res.items()}


def _check_finite(state: TrainState, record: dict, outputs: Outputs, run_dir: Path) -> None:
    """Non-finite statistics or G weights: log it and stop before anything is overwritten."""
    bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad or not all(torch.isfinite(p).all() for p in state.G.parameters()):
        if dist.is_main():
            outputs.event({**record, "event": "diverged"})
        last = list_checkpoints(run_dir)
        raise GanforgeError(
            f"training diverged at {state.nimg / 1000:.1f} kimg (non-finite {', '.join(bad) or 'G weights'}); "
            f"nothing was overwritten: last good checkpoint {last[-1] if last else 'none'}. "
            "Try lower optim.d_lr/g_lr, train.precision=fp32, or loss.name=hinge")


def _claim(held: contextlib.ExitStack, claim) -> Path:
    """Rank 0 claims the run directory (`claim() -> (run_dir, lock)`; the lock is released when `held` closes)
    and clears what killed writes left there; every rank gets the directory."""
    run_dir = None
    if dist.is_main():
        run_dir, lock = claim()
        held.callback(lock.release)
        remove_stale_temp_files(run_dir)
    return Path(dist.broadcast_object(str(run_dir) if run_dir is not None else None))


def _early_stop(stop: StopFlag, step: int, device: torch.device) -> bool:
    """Ctrl-C or SIGTERM (the --minutes budget ends through the schedule clock, training.budget). All ranks must
    stop at the same step, so with several processes they agree through a collective, every STOP_AGREE_EVERY
    steps."""
    wanted = stop.set
    if dist.world_size() == 1:
        return wanted
    return step % STOP_AGREE_EVERY == 0 and dist.any_true(wanted, device)


def _check_world_size(cfg: Config) -> None:
    world, m = dist.world_size(), cfg.model
    if cfg.train.batch % (world * m.pack):
        raise GanforgeError(f"train.batch ({cfg.train.batch}) must be divisible by the number of processes "
                            f"({world}) times model.pack ({m.pack})")
    if "batch" in (m.g_norm, m.d_norm) and cfg.train.batch // (world * m.pack) < 2:
        raise GanforgeError(f"train.batch ({cfg.train.batch}) over {world} processes leaves fewer than 2 items per "
                            "process for batch norm; raise train.batch or use model.g_norm/d_norm other than batch")
