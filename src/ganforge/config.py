"""Typed configuration: dataclasses, preset YAML, `--set a.b=c` overrides checked against field types.

The resolved config is validated once (`validate`) and saved with every artefact (run dir, checkpoints,
exported generator), so a result can always be traced back to exactly what produced it.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import GanforgeError


@dataclass
class DataConfig:
    name: str = "digits"          # dataset registry name: ring, grid, digits, mnist, fashion, cifar10, folder, vectors, ...
    path: str = ""                # file or directory for file-backed datasets ("" = the usual places / cache)
    resolution: int = 0           # target image height (and width unless data.width is set); 0 = native size
    width: int = 0                # target image width for non-square data; 0 = same as resolution
    channels: int = 0             # 1 grey, 3 RGB, 4 RGBA; 0 = native
    crop: str = "center"          # how an image folder is cropped to the target aspect: center | random
    split: str = "train"          # train | test | all
    variant: str = ""             # dataset-specific variant (e.g. EMNIST split "balanced")
    n: int = 100_000              # number of points drawn for toy 2-D sets (PacGAN: 100k)
    seed: int = 0                 # seed for drawing toy sets / random crops
    max_items: int = 0            # use only the first N items (0 = all)
    skip_corrupt: bool = False    # skip unreadable images (and report how many) instead of failing
    cache_dir: str = ""           # preprocessed-data and download cache ("" = $GANFORGE_CACHE or ~/.cache/ganforge)
    download: bool = True         # download official files when not found locally (needs network)


@dataclass
class ModelConfig:
    arch: str = "dcgan"           # model family registry name: mlp | dcgan | resnet
    z_dim: int = 64               # latent dimension
    prior: str = "normal"         # latent prior: normal (N(0, I)) | uniform (U[-1, 1], as in Goodfellow et al. 2014)
    g_width: int = 64             # generator base width (channels for conv nets, units for MLPs)
    d_width: int = 64             # discriminator base width
    depth: int = 3                # hidden layers of MLP G and D
    g_norm: str = "batch"         # generator normalisation: batch | none
    d_norm: str = "none"          # discriminator normalisation: batch | none | spectral
    pack: int = 1                 # PacGAN packing degree m: D judges m samples at once (Lin et al. 2018)
    encoder: bool = False         # BiGAN / ALI: also train an encoder E: x -> z; D judges pairs (x, E(x)) vs (G(z), z)


@dataclass
class LossConfig:
    name: str = "nonsaturating"   # minimax | nonsaturating | wasserstein | hinge | least-squares
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - s (Salimans et al. 2016)
    gp_weight: float = -1.0       # gradient-penalty weight lambda; -1 = the loss's default (10 for wasserstein, else 0)
    r1_gamma: float = 0.0         # R1 penalty gamma/2 * E||grad D(x_real)||^2 (Mescheder et al. 2018); 0 = off


@dataclass
class OptimConfig:
    name: str = "adam"            # adam | sgd | rmsprop
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    g_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])   # Adam betas (beta1 = momentum for sgd)
    d_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant | linear | cosine: both learning rates decay over optim.lr_kimg
    lr_kimg: float = 0.0          # kimg over which the learning rates decay to lr_final * lr (then stay there)
    lr_final: float = 0.0         # final learning rate as a fraction of the initial one


@dataclass
class TrainConfig:
    kimg: float = 100.0           # training length in thousands of real images shown to D
    batch: int = 64               # minibatch size (global, over all processes)
    d_steps: int = 1              # k: discriminator updates per generator update (Goodfellow et al. 2014, Alg. 1)
    reuse_fakes: bool = False     # G's step trains on the last D step's fakes G(z) instead of fresh latents
                                  # (one G forward per step fewer, as pytorch/examples' DCGAN does)
    ema_kimg: float = 10.0        # half-life of the EMA of G's weights, in kimg; 0 = no EMA (G_ema = G)
    ema_rampup: float = 0.05      # EMA half-life is at most rampup * images seen so far; 0 = no ramp-up
    noise_std: float = 0.0        # instance noise: std of Gaussian noise added to D's inputs (model range)
    noise_schedule: str = "linear"  # constant | linear | cosine | exponential (decay to 0 over noise_kimg)
    noise_kimg: float = 0.0       # kimg over which the noise decays to zero (required unless schedule is constant)
    tick_kimg: float = 5.0        # a tick (log line, sample grid, checkpoint, export) every this many kimg
    keep_checkpoints: int = 3     # how many tick checkpoints to keep (the newest); 0 = keep all
    seed: int = 0                 # seeds weights, latents, data order and noise
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    precision: str = "fp32"       # fp32 | bf16 (autocast) | auto (bf16 for conv nets where the hardware has native bf16)
    channels_last: bool = False   # channels_last memory format for conv nets
    compile: bool = False         # torch.compile the G and D forward passes (penalties stay eager; eager fallback)
    cudnn_benchmark: bool = True  # CUDA: let cuDNN time its convolution algorithms once per shape and keep the fastest
    sync_bn: bool = False         # multi-GPU: batch-norm statistics over the global batch (SyncBatchNorm; not on CPU)
    data_device: str = "auto"     # auto | device | host: keep the dataset on the training device, or stream
                                  # minibatches from host memory (auto: host when it would fill > 1/4 of GPU memory)
    grid_size: int = 64           # samples in the fixed-z grid / scatter written at each tick
    metrics: list[str] = field(default_factory=list)  # metrics computed at ticks (see `ganforge eval --help`)
    metrics_n: int = 2500         # samples per metric evaluation at ticks


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    preset: str = ""              # the preset this config started from, for the record
    description: str = ""         # one line shown by `ganforge presets`


CHOICES: dict[str, tuple[str, ...]] = {
    "model.prior": ("normal", "uniform"),
    "model.g_norm": ("batch", "none"),
    "model.d_norm": ("batch", "none", "spectral"),
    "optim.name": ("adam", "sgd", "rmsprop"),
    "optim.lr_schedule": ("constant", "linear", "cosine"),
    "train.noise_schedule": ("constant", "linear", "cosine", "exponential"),
    "train.precision": ("fp32", "bf16", "auto"),
    "train.data_device": ("auto", "device", "host"),
    "data.crop": ("center", "random"),
    "data.split": ("train", "test", "all"),
}


# ---------------------------------------------------------------------------------------------------
# dict <-> dataclass


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _check_value(key: str, value: Any, tp: Any) -> Any:
    """Return `value` converted to type `tp`, or raise GanforgeError naming the key and the expected type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(key, value, a)
            except GanforgeError:
                pass
        raise GanforgeError(f"{key}: expected {tp}, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # allow --set train.metrics=fid,kid
            value = [v for v in (s.strip() for s in value.split(",")) if v] if value else []
        if not isinstance(value, (list, tuple)):
            raise GanforgeError(f"{key}: expected a list, got {value!r}")
        return [_check_value(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise GanforgeError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise GanforgeError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise GanforgeError(f"{key}: expected a (finite) number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise GanforgeError(f"{key}: expected a string, got {value!r}")
    raise AssertionError(f"unsupported config type {tp} for {key}")


def from_dict(d: dict[str, Any], where: str = "config") -> Config:
    """Build a Config from a (possibly partial) nested dict, rejecting unknown keys and wrong types."""
    if not isinstance(d, dict):
        raise GanforgeError(f"{where}: expected a mapping of sections, got {type(d).__name__}")
    cfg = Config()
    apply_dict(cfg, d, where)
    return cfg


def apply_dict(cfg: Config, d: dict[str, Any], where: str = "config") -> None:
    top_types = _field_types(Config)
    for key, value in d.items():
        if key not in top_types:
            raise GanforgeError(
                f"{where}: unknown key {key!r}; valid top-level keys: {', '.join(top_types)}")
        sub = getattr(cfg, key)
        if dataclasses.is_dataclass(sub):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise GanforgeError(f"{where}: section {key!r} must be a mapping, got {value!r}")
            for k, v in value.items():
                set_key(cfg, f"{key}.{k}", v, where=where)
        else:
            setattr(cfg, key, _check_value(key, value, top_types[key]))


def valid_keys(cfg: Config | None = None) -> list[str]:
    cfg = cfg or Config()
    keys = []
    for f in dataclasses.fields(cfg):
        sub = getattr(cfg, f.name)
        if dataclasses.is_dataclass(sub):
            keys += [f"{f.name}.{g.name}" for g in dataclasses.fields(sub)]
        else:
            keys.append(f.name)
    return keys


def set_key(cfg: Config, key: str, value: Any, where: str = "--set") -> None:
    """Set dotted `key` to `value`, type-checked; an unknown key lists the valid ones."""
    parts = key.split(".")
    obj: Any = cfg
    for p in parts[:-1]:
        if not dataclasses.is_dataclass(obj) or p not in _field_types(type(obj)) \
                or not dataclasses.is_dataclass(getattr(obj, p)):
            raise GanforgeError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid_keys(cfg))}")
        obj = getattr(obj, p)
    name = parts[-1]
    types_ = _field_types(type(obj))
    if name not in types_ or dataclasses.is_dataclass(getattr(obj, name)):
        section = ".".join(parts[:-1])
        options = [k for k in valid_keys(cfg) if section and k.startswith(section + ".")] or valid_keys(cfg)
        raise GanforgeError(f"{where}: unknown key {key!r}; valid keys: {', '.join(options)}")
    setattr(obj, name, _check_value(key, value, types_[name]))


def parse_override(item: str) -> tuple[str, Any]:
    """'train.kimg=5' -> ('train.kimg', 5); the value is parsed as YAML (numbers, true/false, lists)."""
    if "=" not in item:
        raise GanforgeError(f"--set {item!r}: expected key=value, e.g. --set train.kimg=5")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if value is None:
        value = raw
    return key, value


def apply_overrides(cfg: Config, items: list[str]) -> Config:
    for item in items:
        key, value = parse_override(item)
        set_key(cfg, key, value, where=f"--set {key}")
    return cfg


# ---------------------------------------------------------------------------------------------------
# presets and files


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ganforge.presets").iterdir() if p.name.endswith(".yaml"))


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GanforgeError(f"config file {str(path)!r} not found") from None
    except OSError as e:
        raise GanforgeError(f"cannot read config file {str(path)!r}: {e.strerror}") from None
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GanforgeError(f"config file {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    return d or {}


def load_preset(name: str) -> Config:
    if name not in preset_names():
        raise GanforgeError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())} "
                            f"(or give a path to a .yaml config)")
    text = resources.files("ganforge.presets").joinpath(f"{name}.yaml").read_text()
    cfg = from_dict(yaml.safe_load(text) or {}, where=f"preset {name}")
    cfg.preset = name
    return cfg


def resolve(source: str | Path | dict | Config | None = None, overrides: list[str] | None = None) -> Config:
    """Preset name, YAML path, dict or Config (+ overrides) -> validated Config."""
    if source is None or source == "":
        cfg = load_preset("digits")
    elif isinstance(source, Config):
        cfg = from_dict(to_dict(source))
    elif isinstance(source, dict):
        cfg = from_dict(source)
    elif str(source).endswith((".yaml", ".yml")) or Path(str(source)).is_file():
        cfg = from_dict(load_yaml(source), where=str(source))
    else:
        cfg = load_preset(str(source))
    apply_overrides(cfg, overrides or [])
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Check values (not just types) once, before anything is built."""
    from .data import DATASETS
    from .losses import LOSSES
    from .models import MODELS
    from .models.base import check_encoder

    for key, choices in CHOICES.items():
        sec, name = key.split(".")
        v = getattr(getattr(cfg, sec), name)
        if v not in choices:
            raise GanforgeError(f"{key}: {v!r} is not one of {', '.join(choices)}")
    DATASETS.get(cfg.data.name)
    MODELS.get(cfg.model.arch)
    loss = LOSSES.get(cfg.loss.name)
    if cfg.model.encoder:
        check_encoder(cfg.model)
        if loss.e is None:
            raise GanforgeError(f"model.encoder: the loss {cfg.loss.name!r} defines no encoder loss "
                                "(AdversarialLoss.e); choose another loss.name or set model.encoder=false")
        if cfg.model.pack != 1:
            raise GanforgeError("model.encoder: packing (model.pack > 1) is not defined for pairs (x, z); "
                                "set model.pack=1")
    t = cfg.train
    positive = {"train.kimg": t.kimg, "train.batch": t.batch, "train.d_steps": t.d_steps,
                "train.tick_kimg": t.tick_kimg, "model.z_dim": cfg.model.z_dim,
                "model.g_width": cfg.model.g_width, "model.d_width": cfg.model.d_width,
                "model.pack": cfg.model.pack, "optim.g_lr": cfg.optim.g_lr, "optim.d_lr": cfg.optim.d_lr}
    for k, v in positive.items():
        if not v > 0:
            raise GanforgeError(f"{k}: must be > 0, got {v}")
    nonneg = {"train.ema_kimg": t.ema_kimg, "train.ema_rampup": t.ema_rampup, "train.noise_std": t.noise_std,
              "train.noise_kimg": t.noise_kimg, "loss.r1_gamma": cfg.loss.r1_gamma,
              "train.keep_checkpoints": t.keep_checkpoints, "data.max_items": cfg.data.max_items,
              "data.resolution": cfg.data.resolution, "data.width": cfg.data.width}
    for k, v in nonneg.items():
        if v < 0:
            raise GanforgeError(f"{k}: must be >= 0, got {v}")
    if not 0.0 <= cfg.loss.label_smoothing < 0.5:
        raise GanforgeError(f"loss.label_smoothing: must be in [0, 0.5), got {cfg.loss.label_smoothing}")
    if cfg.loss.label_smoothing > 0 and not LOSSES.get(cfg.loss.name).smoothing:
        raise GanforgeError(f"loss.label_smoothing: not defined for the {cfg.loss.name} loss (it has no labels); "
                            "use it with minimax, nonsaturating or least-squares")
    if t.noise_std > 0 and t.noise_schedule != "constant" and t.noise_kimg <= 0:
        raise GanforgeError("train.noise_kimg: set the number of kimg over which the instance noise decays to zero "
                            f"(train.noise_schedule={t.noise_schedule}), e.g. --set train.noise_kimg=100")
    if cfg.optim.lr_schedule != "constant" and cfg.optim.lr_kimg <= 0:
        raise GanforgeError(f"optim.lr_kimg: set the kimg over which the {cfg.optim.lr_schedule} learning-rate "
                            "decay runs, e.g. --set optim.lr_kimg=500")
    if not 0.0 <= cfg.optim.lr_final <= 1.0:
        raise GanforgeError(f"optim.lr_final: must be in [0, 1], got {cfg.optim.lr_final}")
    if t.batch % cfg.model.pack:
        raise GanforgeError(f"train.batch ({t.batch}) must be a multiple of model.pack ({cfg.model.pack})")
    for k in ("g_betas", "d_betas"):
        b = getattr(cfg.optim, k)
        if len(b) != 2 or not all(0.0 <= x < 1.0 for x in b):
            raise GanforgeError(f"optim.{k}: expected two numbers in [0, 1), got {b}")
    if t.device not in ("auto", "cpu", "cuda", "mps") and not t.device.startswith("cuda:"):
        raise GanforgeError(f"train.device: {t.device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if t.metrics:
        from .metrics import METRICS
        for m in t.metrics:
            METRICS.get(m)


def save_yaml(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
