"""The component catalog: every built-in part registered, and a config checked against all of them.

Importing this module imports the packages that register ganforge's own datasets, model families, priors,
losses, optimisers, schedules and metrics; plugins (`--import MODULE`) register theirs into the same
registries. `validate(cfg)` is the one place where a config is checked, once, before anything is built:
values, registry names (the allowed values ARE the registries' entries), each selected component's own
options (checked against its options dataclass, defaults filled in, saved with the config), and the
combinations that a component does not support.
"""
from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
import warnings
from pathlib import Path
from typing import Any

from . import augment, data, losses, metrics, models, optim, schedules
from .config import (SECTIONS, Config, ModelConfig, apply_overrides, check_options, check_values, common_keys,
                     field_types, from_dict, load_source, options_selector, parse_override, registry_fields, set_key)
from .errors import GanforgeError
from .recipes import adapt_to_folder
from .registry import Registry

# config field metadata {"registry": name} -> the registry it names
REGISTRIES: dict[str, Registry] = {
    "datasets": data.DATASETS,
    "models": models.MODELS,
    "priors": models.PRIORS,
    "losses": losses.LOSSES,
    "optimizers": optim.OPTIMIZERS,
    "lr_schedules": schedules.LR_SCHEDULES,
    "noise_schedules": schedules.NOISE_SCHEDULES,
    "metrics": metrics.METRICS,
    "augmentations": augment.AUGMENTATIONS,
}


def resolve(source: str | Path | dict | Config | None = None, overrides: list[str] | None = None,
            notes: list[str] | None = None, minutes: float | None = None) -> Config:
    """Preset name, YAML path, directory, dict or Config (+ `--set` overrides) -> a validated Config.

    The `folder` preset (`ganforge train DIR`) then surveys the data and chooses what the user did not set
    (ganforge.recipes); one line per choice is appended to `notes` when a list is given. A Config object is taken
    as it is (resolve's own result passed back, say to `ganforge.train`, is not adapted twice). `minutes`: the
    run's --minutes budget, which some of the folder preset's choices depend on."""
    cfg = load_source(source)
    apply_overrides(cfg, overrides or [])
    if cfg.preset == "folder" and not isinstance(source, Config):  # a Config given back was adapted already
        # (re-adapting it would undo the choices a user made on it, unseen as overrides)
        chosen = adapt_to_folder(cfg, {parse_override(o)[0] for o in overrides or []}, cfg.train.device, minutes)
        if notes is not None:
            notes.extend(chosen)
    return validate(cfg)


def validate(cfg: Config, unknown: list[str] | None = None) -> Config:
    """Check `cfg` against the registries and fill in component options (in place); returns it.

    unknown: for artefacts written by another ganforge version: unknown option keys are appended to it and
    dropped instead of raising.
    """
    check_values(cfg)
    for key, reg, value in registry_fields(cfg):
        for v in (value if isinstance(value, list) else [value]):
            try:
                REGISTRIES[reg].get(v)
            except GanforgeError as e:
                raise GanforgeError(f"{key}: {e}") from None
    for sec in SECTIONS:
        _check_section_options(cfg, sec, unknown)
    for name in cfg.metrics:
        if name not in metrics.METRICS:
            raise GanforgeError(f"metrics.{name}: unknown metric {name!r}; choose one of: "
                                f"{', '.join(metrics.METRICS.names())}")
    cfg.metrics = {nm: opts for nm in sorted(set(cfg.metrics) | set(cfg.train.metrics))
                   if (opts := metrics.metric_options(nm, cfg.metrics.get(nm), unknown))}
    if unknown is None:
        _check_combinations(cfg)
    else:  # an artefact: it was made with what the code did then; say what no longer holds, do not refuse it
        try:
            _check_combinations(cfg)
        except GanforgeError as e:
            warnings.warn(f"this config would not be accepted for a new run: {e}", stacklevel=2)
    return cfg


def _check_section_options(cfg: Config, sec: str, unknown: list[str] | None) -> None:
    section = getattr(cfg, sec)
    selector = options_selector(section)
    if selector is None:
        return
    reg_name = next(f.metadata["registry"] for f in dataclasses.fields(section) if f.name == selector)
    name = getattr(section, selector)
    cls = REGISTRIES[reg_name].options(name)
    if cls is None:
        if section.options and unknown is None:
            k = next(iter(section.options))
            raise GanforgeError(f"unknown key '{sec}.{k}' ({sec}.{selector} {name!r} has no options of its own); "
                                f"valid keys: {', '.join(common_keys(sec, cfg))}")
        if unknown is not None:
            unknown += [f"{sec}.{k}" for k in section.options]
        section.options = {}
        return
    clash = set(field_types(cls)) & {k.split(".", 1)[1] for k in common_keys(sec, cfg)}
    assert not clash, f"{reg_name} {name!r}: options {sorted(clash)} clash with the {sec} section's own keys"
    section.options = check_options(cls, section.options, sec, common_keys(sec, cfg), unknown)


def _check_combinations(cfg: Config) -> None:
    """What a selected component does not support, said before anything is built."""
    m, lo, t, o = cfg.model, cfg.loss, cfg.train, cfg.optim
    loss = losses.LOSSES.get(lo.name)
    models.check_family(m)
    if models.MODELS.get(m.arch).kind == "text":
        if cfg.augment.policy:
            raise GanforgeError(f"augment.policy: {', '.join(cfg.augment.policy)} augment images; the {m.arch!r} "
                                "text model's D judges token sequences; set augment.policy=[]")
        if m.conditional:
            raise GanforgeError(f"model.conditional: the {m.arch!r} text model has no class-conditional form (text "
                                "datasets have no class labels); set model.conditional=false")
    for name in t.metrics:
        if metrics.METRICS.get(name).needs_labels and not m.conditional:
            raise GanforgeError(f"train.metrics: {name!r} scores a class-conditional generator (the classes its "
                                "samples were asked for); set model.conditional=true or leave it out")
    if m.conditional and (m.encoder or m.pack != 1):
        other = "model.encoder" if m.encoder else "model.pack > 1"
        raise GanforgeError(f"model.conditional: not defined together with {other} (whose pairs or packs would need "
                            "a class each); set one of them off")
    if not m.encoder and (lo.latent_weight > 0 or lo.cycle_weight > 0):
        key = "loss.latent_weight" if lo.latent_weight > 0 else "loss.cycle_weight"
        raise GanforgeError(f"{key}: a term of the encoder's training; set model.encoder=true, or 0 (for a trained "
                            "generator, `ganforge encoder RUN` fits an encoder afterwards)")
    if m.encoder:
        if loss.e is None:
            raise GanforgeError(f"model.encoder: the loss {lo.name!r} defines no encoder loss "
                                "(AdversarialLoss.e); choose another loss.name or set model.encoder=false")
        if m.pack != 1:
            raise GanforgeError("model.encoder: packing (model.pack > 1) is not defined for pairs (x, z); "
                                "set model.pack=1")
    for norm, per_step, what in ((m.g_norm, t.batch, "G"), (m.d_norm, t.batch // m.pack, "D")):
        if norm == "batch" and per_step < 2:
            raise GanforgeError(f"train.batch: batch norm in {what} needs at least 2 items per minibatch, got "
                                f"{per_step}; raise train.batch or set model.{what.lower()}_norm to another value")
    if lo.label_smoothing > 0 and not loss.smoothing:
        raise GanforgeError(f"loss.label_smoothing: not defined for the {lo.name} loss (it has no labels); "
                            "use it with minimax, nonsaturating or least-squares")
    if t.noise_std > 0 and schedules.NOISE_SCHEDULES.get(t.noise_schedule).windowed and t.noise_kimg <= 0:
        raise GanforgeError("train.noise_kimg: set the number of kimg over which the instance noise decays to zero "
                            f"(train.noise_schedule={t.noise_schedule}), e.g. --set train.noise_kimg=100")
    if schedules.LR_SCHEDULES.get(o.lr_schedule).windowed and o.lr_kimg <= 0:
        raise GanforgeError(f"optim.lr_kimg: set the kimg over which the {o.lr_schedule} learning-rate "
                            "decay runs, e.g. --set optim.lr_kimg=500")
    if schedules.LR_SCHEDULES.get(lo.gamma_schedule).windowed and lo.gamma_kimg <= 0:
        raise GanforgeError(f"loss.gamma_kimg: set the kimg over which the {lo.gamma_schedule} decay of the R1/R2 "
                            "weights runs, e.g. --set loss.gamma_kimg=500")


def check_run_length(cfg: Config) -> None:
    """A run must not outlast its learning-rate decay when the decay ends at 0: past optim.lr_kimg both
    networks would train at learning rate 0, learning nothing (checked when training starts or resumes, not
    when a saved config is read back)."""
    o, kimg = cfg.optim, cfg.train.kimg
    if schedules.LR_SCHEDULES.get(o.lr_schedule).windowed and o.lr_final == 0 and o.lr_kimg < kimg - 1e-9:
        raise GanforgeError(
            f"optim.lr_kimg ({o.lr_kimg:g}) ends before train.kimg ({kimg:g}) and optim.lr_final is 0: the "
            f"last {kimg - o.lr_kimg:g} kimg would train at learning rate 0. To run longer, stretch the decay "
            f"with it: --set optim.lr_kimg={kimg:g} (or keep a floor, optim.lr_final > 0, or "
            "optim.lr_schedule=constant)")


def from_artefact(d: dict, where: str) -> Config:
    """The config saved in a checkpoint or an exported generator. Keys this version does not know (written by
    another version) are reported in one warning and ignored, not rejected."""
    unknown: list[str] = []
    cfg = validate(from_dict(d, where=where, unknown=unknown), unknown)
    _report_unknown(unknown, where)
    return cfg


def model_from_artefact(d: dict, where: str) -> ModelConfig:
    """The model section of an exported generator, checked on its own (the rest of the config is not needed
    to rebuild G); unknown keys are reported in one warning and ignored."""
    if not isinstance(d, dict):
        raise GanforgeError(f"{where}: 'model' must be a mapping, got {type(d).__name__}")
    unknown: list[str] = []
    cfg = Config()
    for k, v in d.items():
        set_key(cfg, f"model.{k}", v, where=where, unknown=unknown)
    for key, reg, value in registry_fields(cfg):
        if key.startswith("model."):
            try:
                REGISTRIES[reg].get(value)
            except GanforgeError as e:
                raise GanforgeError(f"{key}: {e}") from None
    _check_section_options(cfg, "model", unknown)
    models.check_family(cfg.model, discriminator=False)
    _report_unknown(unknown, where)
    return cfg.model


def _report_unknown(unknown: list[str], where: str) -> None:
    if unknown:
        warnings.warn(f"{where}: ignored {len(unknown)} key(s) this ganforge version does not know "
                      f"(written by another version?): {', '.join(unknown)}", stacklevel=3)


# ---------------------------------------------------------------------------------------------------
# describing the components (ganforge presets, the config reference)


def option_docs(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, comment) of each field of an options dataclass; the comment is the field's
    trailing `# ...` in its source, when the source can be read."""
    comments: dict[str, str] = {}
    try:
        src = inspect.getsource(cls)
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                line = src.splitlines()[tok.start[0] - 1].strip()
                name = line.split(":", 1)[0].strip()
                comments.setdefault(name, tok.string.lstrip("#").strip())
    except (OSError, TypeError, tokenize.TokenError):
        pass
    types_ = field_types(cls)
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        tp = getattr(types_[f.name], "__name__", str(types_[f.name]))
        out.append((f.name, tp, default, comments.get(f.name, "")))
    return out


def catalog() -> list[tuple[str, str, list[tuple[str, str, list[tuple[str, str, Any, str]]]]]]:
    """[(config key, kind, [(name, doc, own options)])] for every registry, in config order."""
    out = []
    seen = set()
    for key, reg_name, _ in registry_fields(Config()):
        reg = REGISTRIES[reg_name]
        if reg_name in seen:
            continue
        seen.add(reg_name)
        section = key.split(".")[0]
        opts_key = "metrics.<name>" if reg_name == "metrics" else section
        entries = [(n, reg.doc(n), [(f"{opts_key}.{o[0]}", *o[1:]) for o in option_docs(reg.options(n))]
                    if reg.options(n) else []) for n in reg.names()]
        out.append((key, reg.kind, entries))
    return out


def describe_components() -> str:
    """Every registered component with its one-line doc and its own options, as text."""
    lines = []
    for key, kind, entries in catalog():
        lines.append(f"{key} ({kind}):")
        width = max(len(n) for n, _, _ in entries)
        for n, doc, opts in entries:
            lines.append(f"  {n:{width}s}  {doc}")
            for okey, tp, default, comment in opts:
                note = f"  {comment}" if comment else ""
                lines.append(f"  {'':{width}s}    --set {okey}={default!r} ({tp}){note}")
    return "\n".join(lines)
