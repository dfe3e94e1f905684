"""The training loop: one readable function, top to bottom (nanoGPT train.py, StyleGAN2-ADA training_loop.py).

  setup (config, data on the device, G/D/G_ema, optimisers, RNG: `setup()`) -> [resume] ->
  repeat: k x (D step) ; G step ; EMA (`train_step()`, which benchmarks/throughput.py also times) ;
          every tick: stats line, sample grid, checkpoint, export, metrics
  until train.kimg is reached, the --minutes budget runs out, or Ctrl-C (all three end with a checkpoint + export).
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import signal
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..config import Config, from_dict, save_yaml, set_key, parse_override, to_dict, validate
from ..data import Data, build_dataset, from_model_range, to_model_range
from ..errors import GanforgeError
from ..losses import LOSSES
from ..losses.objective import STAT_NAMES, Objective, summarize
from ..models import build_models
from ..models.base import sample_prior
from . import distributed as dist
from .checkpoint import export_generator, list_checkpoints, load_checkpoint, resolve_resume, save_checkpoint
from .ema import ema_beta, ema_update
from .progress import Progress
from .schedules import lr_multiplier, noise_std
from .visuals import save_image_grid, save_scatter

RESUME_FROZEN = ("data.", "model.")  # changing these would not be a continuation of the same run


class DeviceSampler:
    """Minibatches through a permutation: no DataLoader, no host sync.

    Data that fits lives on the training device and is indexed there by a device-side permutation. Larger data
    (train.data_device=host, or auto when it would take over a quarter of the free GPU memory) stays in host
    memory (pinned for CUDA): the permutation is then drawn on the CPU (`gen` is a CPU generator) and each
    minibatch is copied to the device as it is needed. `batch` is the global batch; each process keeps its own
    slice of it (distributed.local_slice).
    """

    def __init__(self, x: torch.Tensor, batch: int, gen: torch.Generator, device: torch.device | None = None,
                 channels_last: bool = False, own_gen: bool = False):
        if batch > x.shape[0]:
            raise GanforgeError(f"train.batch ({batch}) is larger than the dataset ({x.shape[0]} items); "
                                "lower train.batch or use more data")
        self.x, self.batch, self.gen = x, batch, gen
        self.device = torch.device(device) if device is not None else x.device
        self.streaming = self.x.device != self.device
        self.channels_last = channels_last and x.ndim == 4
        self.own_gen = own_gen  # a generator of its own (host data): its state is part of the data state
        self.perm = torch.randperm(x.shape[0], generator=gen, device=x.device)
        self.pos = 0

    def next(self) -> torch.Tensor:
        if self.pos + self.batch > self.perm.shape[0]:  # new epoch; the remainder is dropped
            self.perm = torch.randperm(self.x.shape[0], generator=self.gen, device=self.x.device)
            self.pos = 0
        idx = dist.local_slice(self.perm[self.pos: self.pos + self.batch])
        self.pos += self.batch
        out = self.x[idx]
        if self.streaming:
            out = out.to(self.device, non_blocking=True)
            if self.channels_last:
                out = out.contiguous(memory_format=torch.channels_last)
        return out

    def state_dict(self) -> dict:
        s = {"perm": self.perm.cpu(), "pos": self.pos}
        if self.own_gen:
            s["gen"] = self.gen.get_state()
        return s

    def load_state_dict(self, s: dict) -> None:
        self.perm, self.pos = s["perm"].to(self.x.device), int(s["pos"])
        if self.own_gen and "gen" in s:
            self.gen.set_state(s["gen"])


def data_on_device(mode: str, x: torch.Tensor, device: torch.device) -> bool:
    """train.data_device -> keep the whole dataset on the training device?"""
    if mode != "auto":
        return mode == "device"
    if device.type != "cuda":
        return True  # CPU training: host memory *is* the device memory
    free, _ = torch.cuda.mem_get_info(device)
    return x.numel() * x.element_size() < free // 4


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise GanforgeError(f"train.device={name}: CUDA is not available here; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise GanforgeError("train.device=mps: MPS is not available here; use --device cpu")
    return torch.device(name)


def make_optimizer(ocfg, which: str, params, device: torch.device) -> torch.optim.Optimizer:
    lr = getattr(ocfg, f"{which}_lr")
    b1, b2 = getattr(ocfg, f"{which}_betas")
    fast = device.type in ("cuda", "cpu")  # one fused kernel per step (deterministic: no atomics)
    fused = {"fused": True} if fast else {}
    if ocfg.name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), weight_decay=ocfg.weight_decay, **fused)
    if ocfg.name == "sgd":  # momentum = beta1
        return torch.optim.SGD(params, lr=lr, momentum=b1, weight_decay=ocfg.weight_decay, **fused)
    if ocfg.name == "rmsprop":  # alpha = beta2, momentum = beta1 (WGAN used plain RMSprop: set betas [0, 0.99])
        return torch.optim.RMSprop(params, lr=lr, alpha=b2, momentum=b1, weight_decay=ocfg.weight_decay,
                                   foreach=fast or None)  # RMSprop has no fused kernel
    raise AssertionError(ocfg.name)


def new_run_dir(out: str | Path | None, name: str) -> Path:
    if out:
        run_dir = Path(out)
        if list_checkpoints(run_dir) or (run_dir / "log.jsonl").exists():
            raise GanforgeError(f"--out {str(run_dir)!r} already holds a run; continue it with "
                                f"`ganforge train --resume {run_dir}` or choose another --out")
    else:
        root = Path("runs")
        i = 0
        while (root / f"{name}-{i:03d}").exists():
            i += 1
        run_dir = root / f"{name}-{i:03d}"
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


class _StopFlag:
    """Ctrl-C asks the loop to stop at the next step boundary (a second Ctrl-C aborts at once)."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


class CompiledOrEager:
    """`torch.compile(module)`'s forward; if compiling fails (no C compiler, an unsupported op, a compiler bug),
    warn once and run the plain module from then on. The parameters are the module's own either way.

    torch.compile builds a graph at the first call of each kind (grad on or off, weights trainable or frozen),
    but its backward only at the first backward, after this call has returned. So each new kind of call is
    first tried here, forward and backward, on a throw-away pass (buffers such as BN statistics restored),
    where a failure can still fall back.
    """

    def __init__(self, module: nn.Module):
        self.module, self.compiled, self.failed = module, torch.compile(module), False
        self._tried: set[tuple] = set()

    def __call__(self, *args):
        if not self.failed:
            try:
                kind = (torch.is_grad_enabled(), tuple(p.requires_grad for p in self.module.parameters()),
                        tuple(isinstance(a, torch.Tensor) and a.requires_grad for a in args))
                if kind not in self._tried:
                    self._try(args)
                    self._tried.add(kind)
                return self.compiled(*args)
            except Exception as e:
                self.failed = True
                first = (str(e).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"torch.compile failed for {type(self.module).__name__} ({type(e).__name__}: {first}); "
                              "training eagerly", RuntimeWarning, stacklevel=2)
        return self.module(*args)

    def _try(self, args) -> None:
        saved = [b.clone() for b in self.module.buffers()]
        args = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, torch.Tensor) else a for a in args]
        out = self.compiled(*args)
        leaves = [p for p in self.module.parameters() if p.requires_grad] + \
                 [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        if out.requires_grad and leaves:
            torch.autograd.grad(out.float().sum(), leaves, allow_unused=True)
        with torch.no_grad():
            for b, v in zip(self.module.buffers(), saved):
                b.copy_(v)


def resolve_precision(precision: str, device: torch.device, kind: str) -> str:
    """train.precision -> 'fp32' | 'bf16'. 'auto' picks bf16 autocast for conv nets (image data) where the
    hardware runs bf16 natively: CUDA with bf16 support, CPUs with AMX or AVX512-BF16. Small MLPs stay in
    fp32: they are bound by per-op overhead, which autocast's casts only add to."""
    if precision != "auto":
        return precision
    if kind != "image":
        return "fp32"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # private, hence the getattr
        return "bf16" if any(getattr(torch.cpu, f, lambda: False)() for f in probes) else "fp32"
    return "fp32"


@dataclass
class StepContext:
    """Everything one training step touches; built once by `setup()`, advanced by `train_step()`."""
    cfg: Config
    kind: str                  # "image" | "vector"
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    objective: Objective
    sampler: DeviceSampler
    gen: torch.Generator       # data order, latents, noise: one stream, shared by all ranks
    precision: str             # resolved: fp32 | bf16


def configure_backends(t, device: torch.device) -> None:
    """Process-wide backend switches for training on `device` (train.cudnn_benchmark)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(t.cudnn_benchmark)


def setup(cfg: Config, data: Data, device: torch.device) -> StepContext:
    """Data on the device, fresh G / D / G_ema, optimisers, RNG and the objective, as train.* asks."""
    t = cfg.train
    conv = data.kind == "image"
    configure_backends(t, device)
    resident = data_on_device(t.data_device, data.x, device)
    if resident:
        x_src = data.x.to(device)
        if conv and t.channels_last:
            x_src = x_src.contiguous(memory_format=torch.channels_last)
    else:
        x_src = data.x.pin_memory() if device.type == "cuda" else data.x
    torch.manual_seed(t.seed)  # weight init is identical on every rank
    G, D = build_models(cfg.model, data.shape, data.kind)
    G, D = G.to(device), D.to(device)
    if conv and t.channels_last and not t.compile:  # activations follow the weights' layout (a compiled
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)  # net: inductor's)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)  # plain BatchNorm even with train.sync_bn
    if t.sync_bn and dist.active():
        if device.type == "cpu":
            raise GanforgeError("train.sync_bn: torch's SyncBatchNorm needs GPUs (it rejects CPU tensors); on CPU "
                                "train with model.g_norm=none / model.d_norm=none, or set train.sync_bn=false")
        G, D = dist.sync_batchnorm(G), dist.sync_batchnorm(D)
    opt_g = make_optimizer(cfg.optim, "g", G.parameters(), device)
    opt_d = make_optimizer(cfg.optim, "d", D.parameters(), device)
    gen = torch.Generator(device).manual_seed(t.seed * 1000 + 17)
    data_gen = gen if resident else torch.Generator().manual_seed(t.seed * 1000 + 23)
    sampler = DeviceSampler(x_src, t.batch, data_gen, device, channels_last=conv and t.channels_last,
                            own_gen=not resident)
    precision = resolve_precision(t.precision, device, data.kind)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    fwd_g, fwd_d = (CompiledOrEager(G), CompiledOrEager(D)) if t.compile else (G, D)
    encode = G.encode if cfg.model.encoder else None  # E runs eagerly
    objective = Objective.from_config(cfg, fwd_g, fwd_d, D, autocast, encode)  # penalties use the eager D
    return StepContext(cfg, data.kind, G, D, G_ema, opt_g, opt_d, objective, sampler, gen, precision)


def train_step(s: StepContext, nimg: int, stats: torch.Tensor) -> int:
    """train.d_steps discriminator updates, one generator update, the EMA; returns the new image count.

    No host synchronisation: statistics are accumulated into `stats` on the device.
    """
    t, m, o = s.cfg.train, s.cfg.model, s.cfg.optim
    sigma = noise_std(t.noise_schedule, t.noise_std, t.noise_kimg, nimg)
    if o.lr_schedule != "constant":  # plain Python floats: no host sync
        mult = lr_multiplier(o.lr_schedule, o.lr_kimg, o.lr_final, nimg)
        for opt, lr in ((s.opt_g, o.g_lr), (s.opt_d, o.d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr * mult
    # Discriminator: k steps, each on a fresh real batch and fresh latents.
    s.D.requires_grad_(True)
    fake = None
    for i in range(t.d_steps):
        real = to_model_range(s.sampler.next(), s.kind)
        z = dist.local_slice(sample_prior(t.batch, m.z_dim, m.prior, s.gen, real.device))
        s.opt_d.zero_grad(set_to_none=True)
        fake = s.objective.d_phase(real, z, stats, sigma, s.gen, keep_fake=t.reuse_fakes and i == t.d_steps - 1)
        dist.average_grads(s.D)
        s.opt_d.step()
    # Generator: one step; D's weights are frozen so no gradient is computed for them. With
    # train.reuse_fakes it trains on the last D step's fakes (G's weights have not changed since), which
    # saves one forward pass of G per step; otherwise on fresh latents.
    s.D.requires_grad_(False)
    if fake is None:
        z = dist.local_slice(sample_prior(t.batch, m.z_dim, m.prior, s.gen, s.sampler.device))
    s.opt_g.zero_grad(set_to_none=True)
    s.objective.g_phase(z, stats, sigma, s.gen, fake=fake, real=real if m.encoder else None)
    dist.average_grads(s.G)
    s.opt_g.step()
    nimg += t.batch * t.d_steps  # real images shown to D, over all processes
    ema_update(s.G_ema, s.G, ema_beta(t.batch, t.ema_kimg, t.ema_rampup, nimg))
    return nimg


def train(config: Config | dict | str | None = None, *, overrides: list[str] | None = None,
          out: str | Path | None = None, resume: str | Path | None = None, minutes: float | None = None,
          progress: bool = True) -> Path:
    """Train a GAN; returns the run directory. `resume` continues a run exactly where it stopped."""
    from ..config import resolve

    dist.init()
    # ---- config and run directory -------------------------------------------------------------
    state = None
    if resume is not None:
        run_dir, ckpt_path = resolve_resume(resume)
        state = load_checkpoint(ckpt_path)
        cfg = from_dict(state["config"], where=f"checkpoint {ckpt_path}")
        for item in overrides or []:
            key, value = parse_override(item)
            if key.startswith(RESUME_FROZEN):
                raise GanforgeError(f"--set {key}: data and model settings cannot change when resuming; "
                                    "start a new run instead")
            set_key(cfg, key, value, where=f"--set {key}")
        validate(cfg)
        # A resume from an older checkpoint moves the newer ones aside (never deleted).
        newer = [p for p in list_checkpoints(run_dir) if p.name > ckpt_path.name]
        if newer and dist.is_main():
            aside = run_dir / "checkpoints" / "superseded"
            aside.mkdir(exist_ok=True)
            for p in newer:
                p.rename(aside / p.name)
    else:
        cfg = resolve(config, overrides)
        run_dir = new_run_dir(out, cfg.preset or "run") if dist.is_main() else None
        run_dir = Path(dist.broadcast_object(str(run_dir) if run_dir else None))
    world = dist.world_size()
    t = cfg.train
    if t.batch % (world * cfg.model.pack):
        raise GanforgeError(f"train.batch ({t.batch}) must be divisible by the number of processes ({world}) "
                            f"times model.pack ({cfg.model.pack})")
    device = dist.device_for_rank(pick_device(t.device))

    # ---- data, models, optimisers ---------------------------------------------------------------
    data: Data = build_dataset(cfg.data)
    ctx = setup(cfg, data, device)
    G, D, G_ema, opt_g, opt_d = ctx.G, ctx.D, ctx.G_ema, ctx.opt_g, ctx.opt_d
    gen, sampler = ctx.gen, ctx.sampler
    nimg, tick, train_time = 0, 0, 0.0
    if state is not None:
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        G_ema.load_state_dict(state["G_ema"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        for opt, which in ((opt_g, "g"), (opt_d, "d")):  # learning rates may be changed on resume
            for group in opt.param_groups:
                group["lr"] = getattr(cfg.optim, f"{which}_lr")
        nimg, tick, train_time = int(state["nimg"]), int(state["tick"]), float(state.get("train_time", 0.0))
        gen.set_state(state["rng"])
        sampler.load_state_dict(state["data"])
        if nimg >= int(round(t.kimg * 1000)):
            raise GanforgeError(f"this run already reached train.kimg={t.kimg:g}; extend it with "
                                f"`ganforge train --resume {run_dir} --set train.kimg=<more>`")

    probability = LOSSES.get(cfg.loss.name).probability

    # ---- fixed latents for the per-tick grid, the run record -----------------------------------------
    grid_z = sample_prior(t.grid_size, cfg.model.z_dim, cfg.model.prior,
                          torch.Generator().manual_seed(t.seed + 2024)).to(device)
    if dist.is_main():
        (run_dir / "samples").mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, run_dir / "config.yaml")
        if state is not None:
            _log(run_dir, {"event": "resume", "kimg": nimg / 1000, "from": str(ckpt_path.name)})
    total_nimg = int(round(t.kimg * 1000))
    stats = torch.zeros(len(STAT_NAMES), device=device)
    bar = Progress(t.kimg, nimg / 1000, enabled=progress and dist.is_main())
    deadline = time.time() + 60 * minutes if minutes else None
    tick_start_nimg, tick_start = nimg, time.time()
    step = 0
    dist.barrier()

    def do_tick() -> None:
        nonlocal tick, tick_start, tick_start_nimg, train_time
        elapsed = time.time() - tick_start
        train_time += elapsed
        dist.all_reduce_sum(stats)
        s = summarize(stats, probability)
        stats.zero_()
        tick += 1
        record = {"event": "tick", "tick": tick, "kimg": round(nimg / 1000, 4), "nimg": nimg,
                  "time_s": round(train_time, 2), "precision": ctx.precision,
                  "img_per_s": (nimg - tick_start_nimg) / max(elapsed, 1e-9),
                  "noise_std": noise_std(t.noise_schedule, t.noise_std, t.noise_kimg, nimg), **s}
        bad = [k for k, v in s.items() if not math.isfinite(v)]
        if bad or not all(torch.isfinite(p).all() for p in G.parameters()):
            if dist.is_main():
                _log(run_dir, {**record, "event": "diverged"})
            last = list_checkpoints(run_dir)
            raise GanforgeError(
                f"training diverged at {nimg / 1000:.1f} kimg (non-finite {', '.join(bad) or 'G weights'}); "
                f"nothing was overwritten: last good checkpoint {last[-1] if last else 'none'}. "
                "Try lower optim.d_lr/g_lr, train.precision=fp32, or loss.name=hinge")
        if dist.is_main():
            _write_samples(run_dir, G_ema, grid_z, data, tick, nimg, cfg.model.prior)
            if t.metrics:
                record["metrics"] = _tick_metrics(cfg, G_ema, data, device)
            _log(run_dir, record)
            ckpt = {"config": to_dict(cfg), "G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "nimg": nimg, "tick": tick,
                    "train_time": train_time, "ganforge_version": __version__,
                    "rng": gen.get_state().cpu(), "data": sampler.state_dict(), "world_size": world}
            save_checkpoint(run_dir, ckpt, t.keep_checkpoints)
            export_generator(run_dir, G_ema, _export_meta(cfg, data, nimg))
            bar.tick(nimg / 1000, record)
        dist.barrier()
        tick_start, tick_start_nimg = time.time(), nimg

    # ---- the loop ---------------------------------------------------------------------------------
    with _StopFlag() as stop:
        try:
            while True:
                stopping = stop.set or (deadline is not None and time.time() >= deadline)
                if world > 1 and step % 16 == 0:  # ranks agree on stopping (a collective, so not every step)
                    stopping = dist.any_true(stopping, device)
                elif world > 1:
                    stopping = False
                stopping = stopping or nimg >= total_nimg
                if stopping or nimg - tick_start_nimg >= t.tick_kimg * 1000:
                    if nimg > tick_start_nimg or state is None and tick == 0:
                        do_tick()
                    if stopping:
                        break
                nimg = train_step(ctx, nimg, stats)
                step += 1
        finally:
            bar.close()
    if stop.set and dist.is_main():
        print(f"stopped by Ctrl-C at {nimg / 1000:.2f} kimg; checkpoint and generator saved in {run_dir}")
    return run_dir


# ---------------------------------------------------------------------------------------------------
# tick helpers


def _log(run_dir: Path, record: dict) -> None:
    with open(Path(run_dir) / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _export_meta(cfg: Config, data: Data, nimg: int) -> dict:
    return {"ganforge_version": __version__, "format": "ganforge-generator-1", "nimg": nimg,
            "data": {"name": data.name, "kind": data.kind, "shape": list(data.shape),
                     "class_names": data.class_names},
            "model": to_dict(cfg)["model"], "config": to_dict(cfg)}


@torch.no_grad()
def _write_samples(run_dir: Path, G_ema, grid_z: torch.Tensor, data: Data, tick: int, nimg: int,
                   prior: str) -> None:
    out = from_model_range(G_ema(grid_z), data.kind).cpu()
    path = Path(run_dir) / "samples" / f"tick-{tick:05d}-kimg-{nimg / 1000:09.2f}.png"
    if data.kind == "image":
        save_image_grid(out, path)
    else:
        z = sample_prior(2500, grid_z.shape[1], prior, torch.Generator().manual_seed(7)).to(grid_z.device)
        many = from_model_range(G_ema(z), data.kind).cpu().numpy()
        real = data.x[torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:2500]].numpy()
        save_scatter(many, real, path, title=f"{data.name}  {nimg / 1000:.1f} kimg")


def _tick_metrics(cfg: Config, G_ema, data: Data, device: torch.device) -> dict:
    from ..metrics import evaluate
    from ..sampling import generate

    fake = generate(G_ema, cfg.model, data.kind, cfg.train.metrics_n, seed=cfg.train.seed + 99, device=device)
    res = evaluate(fake, data, cfg.train.metrics, n=cfg.train.metrics_n, seed=cfg.train.seed, device=str(device),
                   data_key=data_key(cfg))
    return {name: r.values for name, r in res.items()}


def data_key(cfg: Config) -> str:
    d = cfg.data
    return "-".join(str(v) for v in (d.name, d.variant, d.path, d.resolution, d.width, d.channels, d.crop, d.split,
                                       d.n, d.seed, d.max_items) if v not in ("", 0, None))
