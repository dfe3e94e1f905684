"""The training loop: one readable function, top to bottom (nanoGPT train.py, StyleGAN2-ADA training_loop.py).

  config + run directory -> data -> training state (`setup`, or a checkpoint) -> outputs ->
  repeat: `train_step` (k x D step, G step, EMA) ; every train.tick_kimg: `tick`
  until train.kimg is reached, the --minutes budget runs out, or Ctrl-C (all three end with a tick: a
  checkpoint and the exported generator).
Everything that is not the loop lives in its own file: state.py (what training advances and the checkpoint
schema), step.py, checkpoint.py, outputs.py (config.yaml, log sinks, sample grids, progress), device.py.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from ..components import from_artefact, resolve, validate
from ..config import Config, apply_overrides
from ..data import build_dataset, data_key
from ..errors import GanforgeError
from ..metrics import check_metrics, evaluate
from ..sampling import export_generator, generate
from ..schedules import noise_std
from ..utils import distributed as dist
from ..utils.stats import Stats
from .checkpoint import list_checkpoints, load_checkpoint, resolve_resume, save_checkpoint, set_aside_newer
from .device import pick_device
from .outputs import Outputs
from .rundir import new_run_dir
from .signals import StopFlag
from .state import TrainState, setup
from .step import train_step

RESUME_FROZEN = ("data.", "model.")  # changing these would not be a continuation of the same run
STOP_AGREE_EVERY = 16  # steps between the ranks' agreement on an early stop (a collective, so not every step)
METRICS_SEED_OFFSET = 99  # tick metrics sample G from seed + this


def train(config: Config | dict | str | None = None, *, overrides: list[str] | None = None,
          out: str | Path | None = None, resume: str | Path | None = None, minutes: float | None = None,
          progress: bool = True) -> Path:
    """Train a GAN; returns the run directory. `resume` continues a run exactly where it stopped."""
    if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise GanforgeError(f"--minutes: must be a positive number of minutes, got {minutes!r}")
    dist.init()
    # ---- config and run directory ------------------------------------------------------------------
    ckpt, ckpt_path = None, None
    if resume is None:
        cfg = resolve(config, overrides)
        run_dir = Path(dist.broadcast_object(str(new_run_dir(out, cfg.preset or "run")) if dist.is_main() else None))
    else:
        run_dir, ckpt_path = resolve_resume(resume)
        ckpt = load_checkpoint(ckpt_path)
        cfg = from_artefact(ckpt["config"], f"checkpoint {ckpt_path}")
        apply_overrides(cfg, overrides or [], frozen=RESUME_FROZEN,
                        why="data and model settings cannot change when resuming; start a new run instead")
        validate(cfg)
    _check_world_size(cfg)
    device = dist.device_for_rank(pick_device(cfg.train.device))

    # ---- data and the training state ---------------------------------------------------------------
    data = build_dataset(cfg.data)
    check_metrics(cfg.train.metrics, data)  # a tick metric that cannot work on this data: say so now
    state = setup(cfg, data, device)
    if ckpt is not None:
        state.load_state_dict(ckpt, f"checkpoint {ckpt_path}")
        if state.nimg >= int(round(cfg.train.kimg * 1000)):
            raise GanforgeError(f"this run already reached train.kimg={cfg.train.kimg:g}; extend it with "
                                f"`ganforge train --resume {run_dir} --set train.kimg=<more>`")
        set_aside_newer(run_dir, ckpt_path)  # only now: a resume that failed above has moved nothing

    # ---- the loop ----------------------------------------------------------------------------------
    outputs = Outputs.open(run_dir, cfg, data, device, state.nimg, progress,
                           resumed_from=ckpt_path.name if ckpt_path else None)
    stats = Stats()
    total_nimg = int(round(cfg.train.kimg * 1000))
    tick_nimg = cfg.train.tick_kimg * 1000
    deadline = time.time() + 60 * minutes if minutes else None
    step, tick_start_nimg, tick_start = 0, state.nimg, time.time()
    dist.barrier()
    with StopFlag() as stop:
        try:
            while True:
                stopping = state.nimg >= total_nimg or _early_stop(stop, deadline, step, device)
                if stopping or state.nimg - tick_start_nimg >= tick_nimg:
                    if state.nimg > tick_start_nimg or state.tick == 0:  # progress since the last tick, or none yet
                        tick(state, stats, outputs, run_dir, time.time() - tick_start, state.nimg - tick_start_nimg)
                    tick_start_nimg, tick_start = state.nimg, time.time()
                if stopping:
                    break
                train_step(state, stats)
                step += 1
        finally:
            outputs.close()
    if stop.set and dist.is_main():
        print(f"stopped by Ctrl-C at {state.nimg / 1000:.2f} kimg; checkpoint and generator saved in {run_dir}")
    return run_dir


def tick(state: TrainState, stats: Stats, outputs: Outputs, run_dir: Path, elapsed: float, images: int) -> None:
    """Every train.tick_kimg and at the end: the tick's record and a health check; then, on rank 0 and in this
    order, the checkpoint and the exported generator (so that nothing after them can lose the tick), the
    sample grid, the tick metrics, and the record to log.jsonl / TensorBoard / the progress line."""
    cfg, t = state.cfg, state.cfg.train
    state.train_time += elapsed
    state.tick += 1
    record = {"event": "tick", "tick": state.tick, "kimg": round(state.nimg / 1000, 4), "nimg": state.nimg,
              "time_s": round(state.train_time, 2), "precision": state.precision,
              "img_per_s": images / max(elapsed, 1e-9),
              "noise_std": noise_std(t.noise_schedule, t.noise_std, t.noise_kimg, state.nimg), **stats.read()}
    _check_finite(state, record, outputs, run_dir)
    failure = None
    if dist.is_main():
        save_checkpoint(run_dir, cfg, state)
        export_generator(run_dir, state.G_ema, cfg, outputs.data, state.nimg)
        grid = outputs.samples(state.G_ema, state.tick, state.nimg, cfg.model.prior)
        if t.metrics:
            try:
                record["metrics"] = _tick_metrics(cfg, state, outputs)
            except GanforgeError as e:
                failure = str(e)
                record["metrics_error"] = failure
        outputs.tick(record, grid)
    failure = dist.broadcast_object(failure)
    dist.barrier()
    if failure is not None:
        raise GanforgeError(f"tick metrics failed at {state.nimg / 1000:.2f} kimg ({failure}); this tick's "
                            f"checkpoint and generator are saved: continue with `ganforge train --resume {run_dir} "
                            "--set train.metrics=[]`")


def _tick_metrics(cfg: Config, state: TrainState, outputs: Outputs) -> dict:
    device = state.sampler.device
    fake = generate(state.G_ema, cfg.model, state.kind, cfg.train.metrics_n, seed=cfg.train.seed + METRICS_SEED_OFFSET,
                    device=device)
    res = evaluate(fake, outputs.data, cfg.train.metrics, n=cfg.train.metrics_n, seed=cfg.train.seed,
                   device=str(device), data_key=data_key(cfg.data), options=cfg.metrics)
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


def _early_stop(stop: StopFlag, deadline: float | None, step: int, device: torch.device) -> bool:
    """Ctrl-C or the --minutes budget. All ranks must stop at the same step, so with several processes they
    agree through a collective, every STOP_AGREE_EVERY steps."""
    wanted = stop.set or (deadline is not None and time.time() >= deadline)
    if dist.world_size() == 1:
        return wanted
    return step % STOP_AGREE_EVERY == 0 and dist.any_true(wanted, device)


def _check_world_size(cfg: Config) -> None:
    world = dist.world_size()
    if cfg.train.batch % (world * cfg.model.pack):
        raise GanforgeError(f"train.batch ({cfg.train.batch}) must be divisible by the number of processes "
                            f"({world}) times model.pack ({cfg.model.pack})")
