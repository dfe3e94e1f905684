"""Typed configuration: dataclasses, preset YAML, `--set a.b=c` overrides checked against field types.

This module is the schema only: it imports no component. Fields that name a registered component carry
`metadata={"registry": ...}`; sections whose component may have options of its own keep them in `options`
(shown flat in the section: `loss.margin`, not `loss.options.margin`). `ganforge.components.validate` checks
both against the registries, once, before anything is built. The resolved config is saved with every artefact
(run dir, checkpoints, exported generator), so a result can always be traced back to what produced it.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import GanforgeError


def _registry(name: str, default: Any) -> Any:
    """A field whose value names an entry of registry `name` (checked by ganforge.components)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"registry": name})
    return field(default=default, metadata={"registry": name})


def _options(selector: str) -> Any:
    """The options of the component that field `selector` names: extra keys of the section, flat."""
    return field(default_factory=dict, metadata={"options_of": selector})


@dataclass
class DataConfig:
    name: str = _registry("datasets", "digits")  # dataset: ring, grid, digits, mnist, fashion, cifar10, folder, ...
    path: str = ""                # file or directory for file-backed datasets ("" = the usual places / cache)
    resolution: int = 0           # target image height (and width unless data.width is set); 0 = native size
    width: int = 0                # target image width for non-square data; 0 = same as resolution
    channels: int = 0             # 1 grey, 3 RGB, 4 RGBA; 0 = native
    crop: Literal["center", "random"] = "center"  # how an image is cropped to the target aspect ratio
    split: Literal["train", "test", "all"] = "train"  # for datasets that have splits
    variant: str = ""             # dataset-specific variant (e.g. EMNIST split "balanced")
    n: int = 100_000              # number of points drawn for toy 2-D sets (PacGAN: 100k)
    seed: int = 0                 # seed for drawing toy sets / random crops
    max_items: int = 0            # use only the first N items (0 = all)
    storage: Literal["auto", "memory", "disk"] = "auto"  # folder: decoded images in memory, or on disk, read per
                                  # minibatch (data larger than memory); auto = disk when larger than data.memory_mb
    memory_mb: int = 0            # folder, storage auto: the most data kept in memory (0 = a quarter of the RAM)
    skip_corrupt: bool = False    # skip unreadable images (and report how many) instead of failing
    cache_dir: str = ""           # preprocessed-data and download cache ("" = $GANFORGE_CACHE or ~/.cache/ganforge)
    download: bool = True         # download official files when not found locally (needs network)
    options: dict[str, Any] = _options("name")


@dataclass
class ModelConfig:
    arch: str = _registry("models", "dcgan")  # model family: mlp | dcgan | resnet
    z_dim: int = 64               # latent dimension
    prior: str = _registry("priors", "normal")  # latent prior: normal (N(0, I)) | uniform (U[-1, 1], Goodfellow 2014)
    g_width: int = 64             # generator base width (channels for conv nets, units for MLPs)
    d_width: int = 64             # discriminator base width
    depth: int = 3                # hidden layers of MLP G and D
    g_norm: Literal["batch", "none"] = "batch"  # generator normalisation
    d_norm: Literal["batch", "none", "spectral", "layer"] = "none"  # discriminator normalisation
    pack: int = 1                 # PacGAN packing degree m: D judges m samples at once (Lin et al. 2018)
    encoder: bool = False         # BiGAN / ALI: also train an encoder E: x -> z; D judges pairs (x, E(x)) vs (G(z), z)
    conditional: bool = False     # class-conditional: G(z, class) with a class embedding, D with a projection head
                                  # (Miyato & Koyama 2018); needs a labelled dataset
    mbstd: int = 0                # minibatch standard deviation in D over groups of this size (StyleGAN: 4); 0 = off
    options: dict[str, Any] = _options("arch")


@dataclass
class LossConfig:
    name: str = _registry("losses", "nonsaturating")  # minimax | nonsaturating | wasserstein | hinge | least-squares
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - s (Salimans et al. 2016)
    gp_weight: float = -1.0       # gradient-penalty weight lambda; -1 = the loss's default (10 for wasserstein, else 0)
    r1_gamma: float = 0.0         # R1 penalty gamma/2 * E||grad D(x_real)||^2 (Mescheder et al. 2018); 0 = off
    r2_gamma: float = 0.0         # R2 penalty gamma/2 * E||grad D(G(z))||^2, on generated data; 0 = off
    reg_interval: int = 1         # lazy regularisation: R1/R2 every N D steps, weight x N (Karras et al. 2020)
    gamma_schedule: str = _registry("lr_schedules", "constant")  # constant | linear | cosine: R1/R2 weights decay
    gamma_kimg: float = 0.0       # kimg over which r1_gamma and r2_gamma decay to gamma_final x their value
    gamma_final: float = 0.1      # final R1/R2 weight as a fraction of the initial one (R3GAN: 10x lower)
    latent_weight: float = 0.0    # model.encoder: + w * |E(G(z)) - z|^2 / z_dim in G's and E's step (latent regression)
    cycle_weight: float = 0.0     # model.encoder: + w * |G(E(x)) - x|^2 / d on real data (ALICE's explicit cycle)
    options: dict[str, Any] = _options("name")


@dataclass
class OptimConfig:
    name: str = _registry("optimizers", "adam")  # adam | sgd | rmsprop
    g_lr: float = 2e-4
    d_lr: float = 2e-4
    g_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])   # Adam betas (beta1 = momentum for sgd)
    d_betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    lr_schedule: str = _registry("lr_schedules", "constant")  # constant | linear | cosine, over optim.lr_kimg
    lr_kimg: float = 0.0          # kimg over which the learning rates decay to lr_final * lr (then stay there)
    lr_final: float = 0.0         # final learning rate as a fraction of the initial one
    options: dict[str, Any] = _options("name")


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
    noise_schedule: str = _registry("noise_schedules", "linear")  # constant | linear | cosine | exponential
    noise_kimg: float = 0.0       # kimg over which the noise decays to zero (required unless schedule is constant)
    tick_kimg: float = 5.0        # a tick (log line, sample grid, checkpoint, export) every this many kimg
    keep_checkpoints: int = 3     # how many tick checkpoints to keep (the newest); 0 = keep all
    seed: int = 0                 # seeds weights, latents, data order and noise
    device: str = "auto"          # auto | cpu | cuda | cuda:N | mps
    precision: Literal["fp32", "bf16", "auto"] = "auto"  # bf16 = autocast; auto = bf16 for conv nets where the
                                  # hardware has native bf16 (CUDA, CPUs with AMX or AVX512-BF16)
    channels_last: Literal["auto"] | bool = "auto"  # channels_last memory format for conv nets; auto = on CUDA
    compile: bool = False         # torch.compile the G and D forward passes (penalties stay eager; eager fallback)
    cudnn_benchmark: bool = True  # CUDA: let cuDNN time its convolution algorithms once per shape and keep the fastest
    conv_weight_grad: Literal["auto", "native", "gemm"] = "auto"  # CPU: convolution weight gradients as one matrix
                                  # product (gemm) or oneDNN's kernel (native); auto = gemm where that was measured
                                  # faster: AMX, bf16, layers with <= 16 positions (training/convgrad.py)
    sync_bn: bool = False         # multi-GPU: batch-norm statistics over the global batch (SyncBatchNorm; not on CPU)
    data_device: Literal["auto", "device", "host"] = "auto"  # keep the dataset on the training device, or stream
                                  # minibatches from host memory (auto: host when it would fill > 1/4 of GPU memory)
    grid_size: int = 64           # samples in the fixed-z grid / scatter written at each tick
    metrics: list[str] = _registry("metrics", [])  # metrics computed at ticks (see `ganforge eval --help`)
    metrics_n: int = 2500         # samples per metric evaluation at ticks
    tensorboard: bool = True      # also write TensorBoard event files into the run directory (if it is installed)
    fit_budget: bool = False      # under --minutes, choose model width and batch from a measured speed probe
                                  # of this machine (ganforge.recipes.fit_to_budget); keys set with --set are
                                  # kept. The budget-aware presets (fashion, ...) turn it on


@dataclass
class AugmentConfig:
    """Differentiable augmentation of D's inputs, real and generated (ganforge.augment)."""
    policy: list[str] = _registry("augmentations", [])  # DiffAugment policies: color, translation, cutout; [] = off
    p: float = 1.0                # probability of each policy per image (fixed p; adaptive p starts at 0, as ADA)
    adaptive: bool = False        # ADA: adjust p so that E[sign D(x_real)] stays at augment.target
    target: float = 0.6           # adaptive: the target of E[sign D(x_real)] (ADA: 0.6)
    speed_kimg: float = 100.0     # adaptive: p can move from 0 to 1 in this many kimg (ADA: 500, for longer runs)
    interval: int = 4             # adaptive: training steps between adjustments of p (ADA: 4)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-metric options: metrics.<name>.<key>
    preset: str = ""              # the preset this config started from, for the record
    description: str = ""         # one line shown by `ganforge presets`


SECTIONS = ("data", "model", "loss", "optim", "train", "augment")


# ---------------------------------------------------------------------------------------------------
# field introspection


def field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def options_selector(section: Any) -> str | None:
    """The field naming the component whose options the section keeps, or None (no options)."""
    for f in dataclasses.fields(section):
        if "options_of" in f.metadata:
            return f.metadata["options_of"]
    return None


def registry_fields(cfg: Config) -> list[tuple[str, str, Any]]:
    """(dotted key, registry name, value) of every field that names a registered component."""
    out = []
    for sec in SECTIONS:
        obj = getattr(cfg, sec)
        for f in dataclasses.fields(obj):
            if "registry" in f.metadata:
                out.append((f"{sec}.{f.name}", f.metadata["registry"], getattr(obj, f.name)))
    return out


def common_keys(section_name: str, cfg: Config | None = None) -> list[str]:
    """The dotted keys every value of a section has (its options excluded)."""
    sec = getattr(cfg or Config(), section_name)
    return [f"{section_name}.{f.name}" for f in dataclasses.fields(sec) if "options_of" not in f.metadata]


# ---------------------------------------------------------------------------------------------------
# dict <-> dataclass


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict; component options appear flat in their section, after the common keys."""
    d = dataclasses.asdict(cfg)
    for sec in SECTIONS:
        opts = d[sec].pop("options", None)
        if opts:
            d[sec].update(opts)
    return d


def check_value(key: str, value: Any, tp: Any) -> Any:
    """Return `value` converted to type `tp`, or raise GanforgeError naming the key and the expected type."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices:
            return value
        raise GanforgeError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(key, value, a)
            except GanforgeError:
                pass
        raise GanforgeError(f"{key}: expected {tp}, got {value!r}")
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):  # allow --set train.metrics=fid,kid
            value = [v for v in (s.strip() for s in value.split(",")) if v] if value else []
        if not isinstance(value, (list, tuple)):
            raise GanforgeError(f"{key}: expected a list, got {value!r}")
        return [check_value(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if origin is dict or tp is dict or tp is Any:
        return value
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


def check_options(cls: type, given: dict[str, Any], prefix: str, valid: list[str] = (),
                  unknown: list[str] | None = None) -> dict[str, Any]:
    """A component's options: `given` (raw values) checked against the fields of dataclass `cls`, defaults filled
    in, and `cls(**values)` run so that its __post_init__ can check the values -> {name: value}.

    prefix: the keys' section ("loss"); valid: the section's other keys, for the message on an unknown key;
    unknown: when a list is given, unknown keys are appended to it instead of raising (artefacts).
    """
    types_ = field_types(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for k, v in given.items():
        if k not in types_:
            if unknown is not None:
                unknown.append(f"{prefix}.{k}")
                continue
            allowed = list(valid) + [f"{prefix}.{n}" for n in names]
            raise GanforgeError(f"unknown key '{prefix}.{k}'; valid keys: {', '.join(allowed)}")
        values[k] = check_value(f"{prefix}.{k}", v, types_[k])
    try:
        obj = cls(**values)
    except TypeError as e:  # a field without a default that was not given
        raise GanforgeError(f"{prefix}: {e}") from None
    return {n: getattr(obj, n) for n in names}


def from_dict(d: dict[str, Any], where: str = "config", unknown: list[str] | None = None) -> Config:
    """Build a Config from a (possibly partial) nested dict, rejecting unknown keys and wrong types.

    unknown: when a list is given, unknown keys are appended to it (as dotted keys) instead of raising: for
    artefacts written by another ganforge version, which must still load.
    """
    if not isinstance(d, dict):
        raise GanforgeError(f"{where}: expected a mapping of sections, got {type(d).__name__}")
    cfg = Config()
    apply_dict(cfg, d, where, unknown)
    return cfg


def apply_dict(cfg: Config, d: dict[str, Any], where: str = "config", unknown: list[str] | None = None) -> None:
    top_types = field_types(Config)
    for key, value in d.items():
        if key not in top_types:
            if unknown is not None:
                unknown.append(str(key))
                continue
            raise GanforgeError(f"{where}: unknown key {key!r}; valid top-level keys: {', '.join(top_types)}")
        sub = getattr(cfg, key)
        if dataclasses.is_dataclass(sub) or key == "metrics":
            if value is None:
                continue
            if not isinstance(value, dict):
                raise GanforgeError(f"{where}: section {key!r} must be a mapping, got {value!r}")
            for k, v in value.items():
                if key == "metrics":  # {metric: {option: value}}
                    if not isinstance(v, dict):
                        raise GanforgeError(f"{where}: metrics.{k} must be a mapping of options, got {v!r}")
                    for k2, v2 in v.items():
                        set_key(cfg, f"metrics.{k}.{k2}", v2, where=where, unknown=unknown)
                    cfg.metrics.setdefault(str(k), {})
                else:
                    set_key(cfg, f"{key}.{k}", v, where=where, unknown=unknown)
        else:
            setattr(cfg, key, check_value(key, value, top_types[key]))


def valid_keys(cfg: Config | None = None) -> list[str]:
    cfg = cfg or Config()
    keys = []
    for f in dataclasses.fields(cfg):
        sub = getattr(cfg, f.name)
        if dataclasses.is_dataclass(sub):
            keys += common_keys(f.name, cfg)
        elif f.name == "metrics":
            keys.append("metrics.<metric>.<option>")
        else:
            keys.append(f.name)
    return keys


def set_key(cfg: Config, key: str, value: Any, where: str = "--set", unknown: list[str] | None = None) -> None:
    """Set dotted `key` to `value`, type-checked; an unknown key lists the valid ones.

    A key that is not a field of a section with component options is kept as an option of that component
    (checked against it by ganforge.components.validate).
    """
    parts = key.split(".")
    if parts[0] == "metrics" and hasattr(cfg, "metrics"):  # metrics.<name>.<option>
        if len(parts) != 3 or not all(parts):
            raise GanforgeError(f"{where}: {key!r}: metric options are set as metrics.<metric>.<option>, "
                                "e.g. metrics.kid.subsets=50")
        opts = cfg.metrics.setdefault(parts[1], {})
        opts[parts[2]] = value
        return
    if len(parts) != 2 or parts[0] not in SECTIONS or not parts[1]:
        if unknown is not None:
            unknown.append(key)
            return
        raise GanforgeError(f"{where}: unknown key {key!r}; valid keys: {', '.join(valid_keys(cfg))}")
    sec_name, name = parts
    section = getattr(cfg, sec_name)
    types_ = field_types(type(section))
    if name in types_ and name != "options":
        setattr(section, name, check_value(key, value, types_[name]))
    elif options_selector(section) is not None and name != "options":
        section.options[name] = value  # raw: ganforge.components checks it against the selected component
    elif unknown is not None:
        unknown.append(key)
    else:
        raise GanforgeError(f"{where}: unknown key {key!r}; valid keys: {', '.join(common_keys(sec_name, cfg))}")


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


def apply_overrides(cfg: Config, items: list[str], frozen: tuple[str, ...] = (), why: str = "") -> Config:
    """Apply `--set key=value` items in order; keys starting with a `frozen` prefix are refused (`why`)."""
    for item in items:
        key, value = parse_override(item)
        if frozen and key.startswith(frozen):
            raise GanforgeError(f"--set {key}: {why or 'this key cannot be changed here'}")
        set_key(cfg, key, value, where=f"--set {key}")
    return cfg


# ---------------------------------------------------------------------------------------------------
# values


MAX_SEED = 2 ** 32           # seeds are offset and combined (seed * 1000 + 17, ...): keep them well inside 64 bits
MAX_KIMG = 1e9               # a trillion images: anything longer is a typo, and would overflow the image counter


def check_seed(seed: Any, key: str) -> int:
    """A seed: a whole number in [0, 2^32); anything else is one clear error naming `key`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < MAX_SEED:
        raise GanforgeError(f"{key}: a seed is a whole number from 0 to {MAX_SEED - 1}, got {seed!r}")
    return seed


def check_values(cfg: Config) -> None:
    """The checks on values that need no registry (ganforge.components.validate runs them with its own)."""
    t, m, o = cfg.train, cfg.model, cfg.optim
    check_seed(t.seed, "train.seed")
    check_seed(cfg.data.seed, "data.seed")
    if t.kimg > MAX_KIMG:
        raise GanforgeError(f"train.kimg: at most {MAX_KIMG:g} (a trillion images), got {t.kimg:g}")
    positive = {"train.kimg": t.kimg, "train.batch": t.batch, "train.d_steps": t.d_steps, "data.n": cfg.data.n,
                "train.tick_kimg": t.tick_kimg, "train.grid_size": t.grid_size, "train.metrics_n": t.metrics_n,
                "model.z_dim": m.z_dim, "model.g_width": m.g_width, "model.d_width": m.d_width,
                "model.pack": m.pack, "optim.g_lr": o.g_lr, "optim.d_lr": o.d_lr}
    for k, v in positive.items():
        if not v > 0:
            raise GanforgeError(f"{k}: must be > 0, got {v}")
    nonneg = {"train.ema_kimg": t.ema_kimg, "train.ema_rampup": t.ema_rampup, "train.noise_std": t.noise_std,
              "train.noise_kimg": t.noise_kimg, "loss.r1_gamma": cfg.loss.r1_gamma,
              "loss.r2_gamma": cfg.loss.r2_gamma, "loss.gamma_kimg": cfg.loss.gamma_kimg,
              "loss.latent_weight": cfg.loss.latent_weight, "loss.cycle_weight": cfg.loss.cycle_weight,
              "train.keep_checkpoints": t.keep_checkpoints, "data.max_items": cfg.data.max_items,
              "data.resolution": cfg.data.resolution, "data.memory_mb": cfg.data.memory_mb,
              "data.width": cfg.data.width, "optim.lr_kimg": o.lr_kimg,
              "optim.weight_decay": o.weight_decay, "model.depth": m.depth, "model.mbstd": m.mbstd}
    for k, v in nonneg.items():
        if v < 0:
            raise GanforgeError(f"{k}: must be >= 0, got {v}")
    if cfg.data.width and not cfg.data.resolution:
        raise GanforgeError("data.width: set data.resolution (the height) as well, or neither")
    if cfg.data.channels not in (0, 1, 3, 4):
        raise GanforgeError(f"data.channels: choose 0 (native), 1, 3 or 4, got {cfg.data.channels}")
    if not 0.0 <= cfg.loss.label_smoothing < 0.5:
        raise GanforgeError(f"loss.label_smoothing: must be in [0, 0.5), got {cfg.loss.label_smoothing}")
    if not 0.0 <= o.lr_final <= 1.0:
        raise GanforgeError(f"optim.lr_final: must be in [0, 1], got {o.lr_final}")
    if not 0.0 <= cfg.loss.gamma_final <= 1.0:
        raise GanforgeError(f"loss.gamma_final: must be in [0, 1], got {cfg.loss.gamma_final}")
    if cfg.loss.reg_interval < 1:
        raise GanforgeError(f"loss.reg_interval: must be >= 1 (1 = every D step), got {cfg.loss.reg_interval}")
    if t.batch % m.pack:
        raise GanforgeError(f"train.batch ({t.batch}) must be a multiple of model.pack ({m.pack})")
    for k in ("g_betas", "d_betas"):
        b = getattr(o, k)
        if len(b) != 2 or not all(0.0 <= x < 1.0 for x in b):
            raise GanforgeError(f"optim.{k}: expected two numbers in [0, 1), got {b}")
    a = cfg.augment
    if not 0.0 <= a.p <= 1.0:
        raise GanforgeError(f"augment.p: must be in [0, 1], got {a.p}")
    if not 0.0 < a.target < 1.0:
        raise GanforgeError(f"augment.target: must be in (0, 1) (ADA: 0.6), got {a.target}")
    if not a.speed_kimg > 0:
        raise GanforgeError(f"augment.speed_kimg: must be > 0, got {a.speed_kimg}")
    if a.interval < 1:
        raise GanforgeError(f"augment.interval: must be >= 1, got {a.interval}")
    if t.device not in ("auto", "cpu", "cuda", "mps") and not t.device.startswith("cuda:"):
        raise GanforgeError(f"train.device: {t.device!r} is not one of auto, cpu, cuda, cuda:N, mps")


# ---------------------------------------------------------------------------------------------------
# presets and files


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("ganforge.presets").iterdir() if p.name.endswith(".yaml"))


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GanforgeError(f"config file {str(path)!r} not found") from None
    except UnicodeDecodeError as e:
        raise GanforgeError(f"config file {str(path)!r} is not UTF-8 text ({e.reason} at byte {e.start}); "
                            "save it as UTF-8") from None
    except OSError as e:
        raise GanforgeError(f"cannot read config file {str(path)!r}: {e.strerror}") from None
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise GanforgeError(f"config file {str(path)!r} is not valid YAML: {str(e).splitlines()[0]}") from None
    return d or {}


def load_preset(name: str) -> Config:
    """A preset as it is written (not yet validated against the registries)."""
    if name not in preset_names():
        raise GanforgeError(f"unknown preset {name!r}; choose one of: {', '.join(preset_names())} "
                            f"(or give a path to a .yaml config)")
    text = resources.files("ganforge.presets").joinpath(f"{name}.yaml").read_text()
    cfg = from_dict(yaml.safe_load(text) or {}, where=f"preset {name}")
    cfg.preset = name
    return cfg


def load_source(source: str | Path | dict | Config | None = None) -> Config:
    """Preset name, YAML path, directory of images (the `folder` preset on it), dict or Config -> a new Config
    (not yet validated; see components.resolve). A preset name wins over a directory of that name: ./NAME."""
    if source is None or source == "":
        return load_preset("digits")
    if isinstance(source, Config):
        return from_dict(to_dict(source))
    if isinstance(source, dict):
        return from_dict(source)
    if str(source).endswith((".yaml", ".yml")) or Path(str(source)).is_file():
        return from_dict(load_yaml(source), where=str(source))
    if str(source) not in preset_names() and Path(str(source)).expanduser().is_dir():
        cfg = load_preset("folder")  # `ganforge train DIR`: the folder preset on it (recipes.adapt_to_folder)
        cfg.data.path = str(Path(str(source)).expanduser())
        return cfg
    if "/" in str(source) or str(source).startswith(("~", ".")):
        raise GanforgeError(f"{source}: no such file or directory; give a preset ({', '.join(preset_names())}), "
                            "a .yaml config or a folder of images")
    return load_preset(str(source))


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
