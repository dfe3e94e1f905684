"""The training state: everything a training step advances, built by `setup()`, and the checkpoint schema.

`TrainState.state_dict()` is what a checkpoint holds besides the config; `load_state_dict()` checks and
restores it. This is the one place that knows the schema: a later component with state of its own (say an
adaptive augmentation probability) registers it in `state.extras[name]` (any object with `state_dict` /
`load_state_dict`) and is saved and restored with the rest.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..augment import build_augment
from ..config import Config
from ..data import Data, DeviceSampler, DiskSampler, class_frequencies
from ..errors import GanforgeError
from ..losses import Objective
from ..models import build_models, fit_vocab
from ..optim import make_optimizer
from ..utils import distributed as dist
from . import convgrad
from .budget import Budget, budget_state, load_budget
from .compile import CompiledOrEager
from .device import configure_backends, data_on_device, resolve_channels_last, resolve_precision
from .health import Health

# What every checkpoint must hold (train_time, world_size and extras are optional: older checkpoints lack them).
REQUIRED = ("config", "G", "D", "G_ema", "opt_g", "opt_d", "nimg", "tick", "rng", "data")


def data_fingerprint(data: Data, samples: int = 256) -> dict:
    """What identifies the training data in a checkpoint: its size, item shape and type, and a SHA-256 of `samples`
    evenly spaced items and their labels (cheap for any size; a change elsewhere can go unnoticed)."""
    n = len(data)
    idx = torch.linspace(0, n - 1, min(n, samples)).round().long().unique()
    h = hashlib.sha256(f"{data.x.dtype}{tuple(data.x.shape)}".encode())
    h.update(data.x[idx].contiguous().view(torch.uint8).numpy().tobytes())
    if data.labels is not None:
        h.update(data.labels[idx].contiguous().numpy().tobytes())
    return {"n": n, "shape": list(data.shape), "dtype": str(data.x.dtype).replace("torch.", ""),
            "labels": data.labels is not None, "sampled_sha256": h.hexdigest()}


def check_state_dict(sd: Any, where: str) -> None:
    """A clear GanforgeError unless `sd` has the shape of a ganforge checkpoint."""
    if not isinstance(sd, dict) or not set(REQUIRED) <= set(sd):
        missing = sorted(set(REQUIRED) - set(sd)) if isinstance(sd, dict) else list(REQUIRED)
        raise GanforgeError(f"{where} is not a ganforge checkpoint (missing {missing})")


@dataclass
class TrainState:
    """G, D, their EMA and optimisers, the objective, the data order and RNG, and the counters."""
    cfg: Config
    kind: str                  # "image" | "vector" | "text"
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    objective: Objective
    sampler: DeviceSampler
    gen: torch.Generator       # data order (device-resident data), latents, noise: one stream shared by all ranks
    precision: str             # resolved: fp32 | bf16
    nimg: int = 0              # real images shown to D so far, over all processes
    tick: int = 0
    train_time: float = 0.0    # seconds spent training (ticks included), summed over resumes
    sched_nimg: int = 0        # the schedule clock in images (training.budget): nimg, or ahead of it under --minutes
    budget: Budget | None = None  # the --minutes budget the schedule clock follows (training.budget)
    data_id: dict = field(default_factory=dict)  # data_fingerprint() of the training data
    class_freq: torch.Tensor | None = None  # model.conditional: each class's share of the data, on the device
    extras: dict[str, Any] = field(default_factory=dict)  # later components' state: name -> state_dict holder

    def sample_classes(self, n: int) -> torch.Tensor:
        """Labels for n generated samples, drawn from the data's class frequencies (this rank's slice)."""
        c = torch.multinomial(self.class_freq, n * dist.world_size(), replacement=True, generator=self.gen)
        return dist.local_slice(c)

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(), "nimg": self.nimg,
                "tick": self.tick, "train_time": self.train_time, "sched_nimg": self.sched_nimg,
                "budget": budget_state(self), "rng": self.gen.get_state().cpu(),
                "data": self.sampler.state_dict(), "data_id": self.data_id,
                "extras": {k: v.state_dict() for k, v in self.extras.items()}}

    def load_state_dict(self, sd: dict, where: str = "checkpoint", allow_data_change: bool = False) -> None:
        """Restore from a checkpoint dict; the learning rates come from the config (they may change on resume).

        The training data must be the checkpoint's (size, shape and a sampled fingerprint); with
        allow_data_change the run continues on the new data, in a fresh order."""
        check_state_dict(sd, where)
        changed = _data_changes(sd.get("data_id"), self.data_id)
        if changed and not allow_data_change:
            raise GanforgeError(f"the training data changed since {where} was written ({'; '.join(changed)}); "
                                "restore the data, or continue on the new data with --allow-data-change")
        try:
            self.G.load_state_dict(sd["G"])
            self.D.load_state_dict(sd["D"])
            self.G_ema.load_state_dict(sd["G_ema"])
            self.opt_g.load_state_dict(sd["opt_g"])
            self.opt_d.load_state_dict(sd["opt_d"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise GanforgeError(f"{where} does not match this model ({str(e).splitlines()[0][:200]}); was it "
                                "written by another ganforge version or for another config?") from None
        for opt, lr in ((self.opt_g, self.cfg.optim.g_lr), (self.opt_d, self.cfg.optim.d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr
        self.nimg, self.tick = int(sd["nimg"]), int(sd["tick"])
        self.train_time = float(sd.get("train_time", 0.0))
        self.sched_nimg = max(int(sd.get("sched_nimg", 0)), self.nimg)  # older checkpoints: the image count
        self.budget = load_budget(sd.get("budget"))
        self.gen.set_state(sd["rng"])
        if not changed:  # on changed data the saved order means nothing: keep the fresh one
            self.sampler.load_state_dict(sd["data"])
        saved = sd.get("extras", {})
        for name, holder in self.extras.items():
            if name in saved:
                holder.load_state_dict(saved[name])
            else:
                warnings.warn(f"{where} holds no state for {name!r} (written before it existed); it starts fresh",
                              stacklevel=2)


def _data_changes(saved: dict | None, now: dict) -> list[str]:
    if not saved:  # checkpoints of older versions hold no fingerprint
        return []
    names = {"n": "items", "shape": "item shape", "dtype": "type", "labels": "labels present",
             "sampled_sha256": "contents"}
    return [f"{names.get(k, k)}: {saved.get(k)} then, {now.get(k)} now" if k != "sampled_sha256"
            else "contents differ" for k in now if saved.get(k) != now.get(k)]


def setup(cfg: Config, data: Data, device: torch.device) -> TrainState:
    """Data on the device, fresh G / D / G_ema, optimisers, RNG and the objective, as train.* asks."""
    t = cfg.train
    cl = resolve_channels_last(t.channels_last, device, data.kind)  # channels_last memory format
    configure_backends(t, device)
    on_disk = data.info.get("storage") == "disk"  # larger than memory: read per minibatch (data/disk.py)
    resident = not on_disk and data_on_device(t.data_device, data.x, device)
    if on_disk:
        x_src = data.x  # a memory map: never copied or pinned as a whole
    elif resident:
        x_src = data.x.to(device)
        if cl:
            x_src = x_src.contiguous(memory_format=torch.channels_last)
    else:
        x_src = data.x.pin_memory() if device.type == "cuda" else data.x
    torch.manual_seed(t.seed)  # weight init is identical on every rank
    class_freq = class_frequencies(data) if cfg.model.conditional else None
    if data.kind == "text":  # the vocabulary is the data's: model.vocab, saved with the config and the export
        fit_vocab(cfg.model, int(data.info["vocab_size"]))
    G, D = build_models(cfg.model, data.shape, data.kind, 0 if class_freq is None else len(class_freq))
    G, D = G.to(device), D.to(device)
    if cl and not t.compile:  # activations follow the weights' layout (a compiled
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)  # net: inductor's)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)  # plain BatchNorm even with train.sync_bn
    if not t.compile:  # after the copy (G_ema never trains); a compiled net is inductor's
        convgrad.install(t.conv_weight_grad, device, G, D)
    if t.sync_bn and dist.active():
        if device.type == "cpu":
            raise GanforgeError("train.sync_bn: torch's SyncBatchNorm needs GPUs (it rejects CPU tensors); on CPU "
                                "train with model.g_norm=none / model.d_norm=none, or set train.sync_bn=false")
        G, D = dist.sync_batchnorm(G), dist.sync_batchnorm(D)
    opt_g = make_optimizer(cfg.optim, "g", G.parameters(), device)
    opt_d = make_optimizer(cfg.optim, "d", D.parameters(), device)
    gen = torch.Generator(device).manual_seed(t.seed * 1000 + 17)
    if hasattr(G, "rng"):  # G draws noise of its own (Gumbel-softmax): from the run's stream, which checkpoints hold
        G.rng = gen
    data_gen = gen if resident else torch.Generator().manual_seed(t.seed * 1000 + 23)
    labels = data.labels if cfg.model.conditional else None
    if on_disk:
        sampler = DiskSampler(x_src, data.info["disk_file"], t.batch, data_gen, device,
                              channels_last=cl, labels=labels)
    else:
        sampler = DeviceSampler(x_src, t.batch, data_gen, device, channels_last=cl,
                                own_gen=not resident, labels=labels)
    precision = resolve_precision(t.precision, device, data.kind)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    fwd_g, fwd_d = (CompiledOrEager(G), CompiledOrEager(D)) if t.compile else (G, D)
    encode = G.encode if cfg.model.encoder else None  # E runs eagerly
    augment = build_augment(cfg, data.kind, device)
    objective = Objective.from_config(cfg, fwd_g, fwd_d, D, autocast, encode, augment)  # penalties: eager D
    extras = {"health": Health(sign_meaningful=objective.loss.probability and not objective.loss.g_uses_real)}
    if augment is not None:
        extras["augment"] = augment
    return TrainState(cfg, data.kind, G, D, G_ema, opt_g, opt_d, objective, sampler, gen, precision,
                      data_id=data_fingerprint(data),
                      class_freq=None if class_freq is None else class_freq.to(device),
                      extras=extras)

