"""`evaluate`: the metric and feature-space registries and the glue from data to stamped numbers.

Per requested metric: pick its feature space for the data kind (SPACES) -> extract fake features once per space
(shared by every metric of that space) -> real features from the reference cache -> the pure metric function
-> a `MetricResult` whose protocol says how the number was made (with the metric's own options, if any).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import check_options
from ..data.base import Data, cache_dir
from ..data.toy2d import TOY_SETS
from ..errors import GanforgeError
from ..registry import Registry
from . import domain, inception, selfsup
from .features import FeatureDict, Reference, Space, reference_features, tensor_sha256
from .fid import feature_stats, fid_from_features, fid_lowrank, frechet_distance, lowrank_applies
from .isc import SPLITS, is_from_logits
from .kid import SUBSET_SIZE, SUBSETS, kid_from_features, kid_subset_size
from .prdc import K_DC, K_PR, density_coverage, precision_recall
from .toy import HQ_THRESHOLD, toy_metrics

DOMAIN_SEED = 0  # the domain classifier is part of the protocol, like Inception's weights: not re-drawn per seed
SELFSUP_SEED = 0  # so is the self-supervised network
_PREFIX = {"domain": "domain_", "selfsup": "ssl_"}  # value names per feature space: fid / domain_fd / ssl_fd


@dataclass
class MetricResult:
    """One metric's numbers and the protocol that produced them."""

    name: str
    values: dict[str, float]   # e.g. {"fid": 12.3} or {"precision": .., "recall": ..}
    protocol: dict             # feature network + weights sha256, resize, n_real, n_fake, reference split, seed, ...


@dataclass
class Inputs:
    """What a metric function sees."""

    space: Space                       # the feature space (its `main` feature is the one distances use)
    fake: FeatureDict                  # features of the generated set
    real: Reference | None             # real features (None when the metric needs none)
    data: Data                         # the real Data (labels, name)
    seed: int
    device: str
    options: dict = field(default_factory=dict)  # the metric's own options (validated, defaults filled in)
    fake_labels: torch.Tensor | None = None   # int64 [N_fake]: the classes generated samples were asked for
    real_labels: torch.Tensor | None = None   # int64 [N_real]: the labels of the real items used
    fake_x: torch.Tensor | None = None        # the generated samples themselves (uint8 images or float vectors)
    real_x: torch.Tensor | None = None        # the real items used (the `n` subset), as stored
    real_index: torch.Tensor | None = None    # their indices into `data.x` (None: all of it, in order)
    heldout: Data | None = None               # real data the generator never trained on (a test split), if any


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its feature space per data kind, whether it needs real features, the function.
    Options of its own: `METRICS.register(name, options=Dataclass)`; they arrive as `Inputs.options`."""

    name: str
    doc: str
    spaces: dict[str, str]                                      # data kind -> feature space name (SPACES)
    compute: Callable[[Inputs], tuple[dict[str, float], dict]]  # -> (values, extra protocol)
    needs_real: bool = True
    check: Callable[[Data], None] | None = None                 # raises GanforgeError if `data` cannot be scored
    needs_labels: bool = False                                  # needs the classes of the generated samples


@dataclass(frozen=True)
class SpaceContext:
    """What building a feature space may use."""

    weights_dir: Path          # where network weights are looked up (e.g. the Inception file)
    store: Path | None         # where fitted feature networks and reference features are cached (None: nowhere)
    device: str
    batch_size: int
    data_key: str
    options: dict = field(default_factory=dict)  # the merged options of the metrics that share this space


@dataclass(frozen=True)
class SpaceSpec:
    """A registered feature space: `build(real, ctx) -> Space`; `check(real)` says early if it cannot apply."""

    build: Callable[[Data, SpaceContext], Space]
    check: Callable[[Data], None] | None = None
    doc: str = ""


METRICS: Registry[MetricSpec] = Registry("metric")
SPACES: Registry[SpaceSpec] = Registry("feature space")


def _fid(inp: Inputs) -> tuple[dict[str, float], dict]:
    name = inp.space.main
    f1, f2 = inp.fake[name], inp.real.features[name]
    if lowrank_applies(len(f1), len(f2), f1.shape[1]):
        value, how = fid_lowrank(f1, f2), "nuclear norm of A1 A2^T (exact identity; a set has N <= D)"
    else:  # the reference statistics come from the cache when they are there
        value, how = frechet_distance(*feature_stats(f1), *inp.real.stats(name)), "eigenvalues of S1 S2 (complex sqrt)"
    return {_PREFIX.get(inp.space.name, "") + ("fd" if inp.space.name in _PREFIX else "fid"): value}, dict(
        statistics="mean + unbiased covariance (float64)", trace_sqrt=how)


def _kid(inp: Inputs) -> tuple[dict[str, float], dict]:
    f1, f2 = inp.fake[inp.space.main], inp.real.features[inp.space.main]
    pre = _PREFIX.get(inp.space.name, "")
    return {pre + k: v for k, v in kid_from_features(f1, f2, seed=inp.seed).items()}, dict(
        kernel="polynomial (x.y/D + 1)^3", mmd="unbiased", subsets=SUBSETS,
        subset_size=kid_subset_size(len(f1), len(f2), SUBSET_SIZE), subset_rng=f"np.random.RandomState({inp.seed})")


def _is(inp: Inputs) -> tuple[dict[str, float], dict]:
    return is_from_logits(inp.fake["logits_unbiased"], seed=inp.seed), dict(
        logits="pool3 @ fc.weight.T (no bias), 1008 classes", splits=SPLITS,
        shuffle=f"np.random.RandomState({inp.seed}).permutation")


def _as_many_real(inp: Inputs) -> tuple[torch.Tensor, dict]:
    """The real features for the k-NN metrics: at most as many as there are samples (a random subset drawn with
    the seed). Their radii depend on the set sizes, and the papers use equal sizes; 60,000 real items against
    10,000 samples would also cost 36x the time of the radii."""
    real, n = inp.real.features[inp.space.main], len(inp.fake[inp.space.main])
    if len(real) <= n:
        return real, {}
    idx = torch.randperm(len(real), generator=torch.Generator().manual_seed(inp.seed))[:n]
    return real[idx], dict(real_for_radii=f"random {n} of the {len(real)} real items (seed {inp.seed}): as many "
                                          "as samples")


def _pr(inp: Inputs) -> tuple[dict[str, float], dict]:
    k = inp.space.main
    real, extra = _as_many_real(inp)
    return precision_recall(real, inp.fake[k], k=K_PR, device=inp.device), dict(
        k=K_PR, membership="<= (Kynkaanniemi et al. 2019)", distance="euclidean, float64", **extra,
        **(dict(note="Inception pool3 features, not the paper's VGG16 fc2") if k == "pool3" else {}))


def _prdc(inp: Inputs) -> tuple[dict[str, float], dict]:
    real, extra = _as_many_real(inp)
    return density_coverage(real, inp.fake[inp.space.main], k=K_DC, device=inp.device), dict(
        k=K_DC, membership="< (Naeem et al. 2020)", distance="euclidean, float64", **extra)


def _class_kl(inp: Inputs) -> tuple[dict[str, float], dict]:
    labels = inp.data.labels
    k = domain.n_classes_of(labels, inp.data.class_names)
    return domain.class_kl(inp.fake["logits"], labels, k), dict(
        reference_labels=f"all {len(labels)} labels of the real set",
        kl="KL(argmax histogram of fake || real label distribution), nats")


DIVERSITY_N = 2000  # samples per set (the same number for both: nearest-neighbour distances depend on it)


def nn_spread(f: torch.Tensor, seed: int, n: int = DIVERSITY_N) -> float:
    """Median distance of each row of f [N, D] to its nearest other row (a random n of them, drawn with `seed`)."""
    if len(f) < 2:
        raise GanforgeError(f"diversity needs at least 2 samples per set, got {len(f)}")
    idx = torch.randperm(len(f), generator=torch.Generator().manual_seed(seed))[:n]
    d = torch.cdist(f[idx].double(), f[idx].double())
    d.fill_diagonal_(float("inf"))
    return float(d.min(1).values.median())


def _diversity(inp: Inputs) -> tuple[dict[str, float], dict]:
    k = inp.space.main
    n = min(DIVERSITY_N, len(inp.fake[k]), len(inp.real.features[k]))
    fake, real = nn_spread(inp.fake[k], inp.seed, n), nn_spread(inp.real.features[k], inp.seed, n)
    return dict(diversity=fake / real if real > 0 else float("nan"), fake_spread=fake, real_spread=real), dict(
        diversity=f"median nearest-neighbour distance within {n} samples / within {n} real items (near-duplicates "
                  "and collapse bring it towards 0; ~1 for a fresh draw of the data)")


def _check_toy(data: Data) -> None:
    if data.name not in TOY_SETS:
        raise GanforgeError(f"the toy metric is defined for the {' and '.join(sorted(TOY_SETS))} data sets, "
                            f"not {data.name!r}")


def _class_acc(inp: Inputs) -> tuple[dict[str, float], dict]:
    """How often the domain classifier gives a generated sample the class it was generated for."""
    pred = inp.fake["logits"].argmax(1)
    hit = (pred == inp.fake_labels.cpu()).double()
    k = domain.n_classes_of(inp.data.labels, inp.data.class_names)
    names = inp.data.class_names or [str(c) for c in range(k)]
    per = {c: float(hit[inp.fake_labels.cpu() == c].mean()) for c in range(k) if (inp.fake_labels == c).any()}
    acc = float(inp.space.protocol.get("classifier_accuracy", float("nan")))
    real = inp.space.protocol.get("classifier_class_accuracy") or [None] * k
    return dict(class_acc=float(hit.mean()), real_acc=acc, worst_class_acc=min(per.values())), dict(
        real_acc="the classifier's accuracy on held-out real images (the ceiling to compare with)",
        worst_class_acc=f"the lowest per-class accuracy over the {len(per)} classes generated",
        per_class={names[c]: dict(samples=a, real=real[c]) for c, a in per.items()})


def _class_fd(inp: Inputs) -> tuple[dict[str, float], dict]:
    """Frechet distance in the domain classifier's features, class by class, averaged over classes."""
    f_fake, f_real = inp.fake["feat"], inp.real.features["feat"]
    fds = []
    for c in torch.unique(inp.fake_labels).tolist():
        a, b = f_fake[inp.fake_labels.cpu() == c], f_real[inp.real_labels.cpu() == c]
        if len(a) >= 2 and len(b) >= 2:
            fds.append(fid_from_features(a, b))
    if not fds:
        raise GanforgeError("class_fd: no class has at least 2 generated and 2 real samples; raise the sample count")
    return dict(class_fd=float(np.mean(fds)), class_fd_max=float(np.max(fds))), dict(
        classes=len(fds), statistics="per class: mean + unbiased covariance; averaged over classes")


def _toy(inp: Inputs) -> tuple[dict[str, float], dict]:
    _check_toy(inp.data)
    v = toy_metrics(inp.fake["x"], inp.data.name)
    v.pop("n")  # = n_fake in the protocol
    return v, dict(protocol="PacGAN (Lin et al. 2018)", hq_threshold_std=HQ_THRESHOLD,
                   reverse_kl="log K - H(mode histogram of the high-quality samples)")


_IMG_VEC = {"image": "inception", "vector": "raw"}
for _spec in (
    MetricSpec("fid", "Frechet distance: fid (Inception pool3 for images, the vectors themselves otherwise)",
               _IMG_VEC, _fid),
    MetricSpec("kid", "kernel distance, cubic polynomial kernel, unbiased MMD^2: kid, kid_std", _IMG_VEC, _kid),
    MetricSpec("is", "Inception Score over 10 splits: is, is_std", {"image": "inception"}, _is, needs_real=False),
    MetricSpec("pr", "improved precision / recall, k=3: precision, recall", _IMG_VEC, _pr),
    MetricSpec("prdc", "Naeem et al. k=5: precision, recall, density, coverage", _IMG_VEC, _prdc),
    MetricSpec("domain_fd", "Frechet distance in a classifier of the labelled images: domain_fd",
               {"image": "domain"}, _fid),
    MetricSpec("class_kl", "KL of predicted classes to the real labels: class_kl, classes_covered, n_classes",
               {"image": "domain"}, _class_kl, needs_real=False),
    MetricSpec("ssl_fd", "Frechet distance in a self-supervised network of the real images (no labels, no "
               "download): ssl_fd", {"image": "selfsup"}, _fid),
    MetricSpec("ssl_kid", "kernel distance in the self-supervised features: ssl_kid, ssl_kid_std",
               {"image": "selfsup"}, _kid),
    MetricSpec("ssl_pr", "improved precision / recall (k=3) in the self-supervised features: precision, recall",
               {"image": "selfsup"}, _pr),
    MetricSpec("ssl_prdc", "density / coverage (k=5) in the self-supervised features: precision, recall, density, "
               "coverage", {"image": "selfsup"}, _prdc),
    MetricSpec("diversity", "samples' nearest-neighbour spread over the real data's in the self-supervised "
               "features (~1 healthy, << 1 collapse): diversity, fake_spread, real_spread",
               {"image": "selfsup", "vector": "raw"},
               _diversity),
    MetricSpec("toy", "PacGAN ring/grid: modes, hq (fraction), reverse_kl", {"vector": "raw"}, _toy, needs_real=False,
               check=_check_toy),
    MetricSpec("class_acc", "conditional G: how often the domain classifier sees the class asked for: class_acc, "
               "real_acc, worst_class_acc", {"image": "domain"}, _class_acc, needs_real=False, needs_labels=True),
    MetricSpec("class_fd", "conditional G: domain Frechet distance class by class: class_fd (mean), class_fd_max",
               {"image": "domain"}, _class_fd, needs_labels=True),
):
    METRICS.register(_spec.name)(_spec)


# --------------------------------------------------------------------------------------------------------------


def _check_fake(fake: torch.Tensor | list[str], real: Data) -> torch.Tensor | list[str]:
    if real.kind == "text":  # strings, or token ids the text space decodes with the data's tokenizer
        if isinstance(fake, (list, tuple)) and all(isinstance(s, str) for s in fake):
            return list(fake)
        if not isinstance(fake, torch.Tensor) or fake.is_floating_point() or fake.ndim != 2:
            raise GanforgeError("fake text must be a list of strings or int token ids [N, L], got "
                                f"{type(fake).__name__} {getattr(fake, 'dtype', '')} "
                                f"{list(getattr(fake, 'shape', []))}")
        return fake
    if not isinstance(fake, torch.Tensor):
        raise GanforgeError(f"fake samples must be a torch.Tensor, got {type(fake).__name__}")
    if real.kind == "image":
        if fake.dtype != torch.uint8 or fake.ndim != 4 or fake.shape[1] != real.x.shape[1]:
            raise GanforgeError(
                f"fake images must be uint8 [N, {real.x.shape[1]}, H, W] like the real data (convert G's output with "
                f"ganforge.data.from_model_range), got {fake.dtype} {tuple(fake.shape)}")
        return fake
    if not fake.is_floating_point() or fake.ndim != 2 or fake.shape[1] != real.x.shape[1]:
        raise GanforgeError(f"fake vectors must be float [N, {real.x.shape[1]}] like the real data, "
                            f"got {fake.dtype} {tuple(fake.shape)}")
    return fake.float()


def _inception_space(real: Data, ctx: SpaceContext) -> Space:
    net, proto = inception.load_inception(cache=ctx.weights_dir)
    return Space("inception", "pool3", proto,
                 lambda x: inception.inception_features(net, x, ctx.batch_size, ctx.device))


def _domain_space(real: Data, ctx: SpaceContext) -> Space:
    labels = real.labels
    domain.check_labelled(real.x, labels)
    k = domain.n_classes_of(labels, real.class_names)
    net, info = domain.domain_classifier(real.x, labels, k, ctx.data_key, DOMAIN_SEED, ctx.store, ctx.device)
    proto = dict(features=f"domain classifier ({domain.ARCH}) penultimate, {domain.FEATURE_DIM}-d",
                 classifier=info["key"], classifier_accuracy=info["accuracy"], classifier_seed=info["seed"],
                 classifier_epochs=info["epochs"], classifier_n_train=info["n_train"],
                 classifier_class_accuracy=info.get("class_accuracy")
                 or domain.held_out_class_accuracy(net, real.x, labels, k, info["seed"]))

    def extract(x: torch.Tensor) -> FeatureDict:
        if tuple(x.shape[1:]) != tuple(real.x.shape[1:]):
            raise GanforgeError(f"the domain classifier was trained on images {tuple(real.x.shape[1:])}, "
                                f"got {tuple(x.shape[1:])}")
        return domain.domain_features(net, x, max(ctx.batch_size, 256), ctx.device)

    return Space("domain", "feat", proto, extract)


def _selfsup_space(real: Data, ctx: SpaceContext) -> Space:
    selfsup.check_images(real.x)
    net, info = selfsup.selfsup_network(real.x, real.labels, ctx.data_key, SELFSUP_SEED, ctx.store, ctx.device)
    proto = dict(features=f"self-supervised CNN ({selfsup.ARCH}, SimCLR on the real images) backbone, "
                          f"{selfsup.FEATURE_DIM}-d", resize=f"bilinear to {selfsup.WORK}x{selfsup.WORK}",
                 network=info["key"], network_seed=info["seed"], network_steps=info["steps"],
                 network_n_train=info["n_train"],
                 **({"knn_accuracy": info["knn_accuracy"]} if "knn_accuracy" in info else {}))

    def extract(x: torch.Tensor) -> FeatureDict:
        if tuple(x.shape[1:]) != tuple(real.x.shape[1:]):
            raise GanforgeError(f"the self-supervised network was trained on images {tuple(real.x.shape[1:])}, "
                                f"got {tuple(x.shape[1:])}")
        return {"feat": selfsup.selfsup_features(net, x, max(ctx.batch_size, 512), ctx.device)}

    return Space("selfsup", "feat", proto, extract)


def _raw_space(real: Data, ctx: SpaceContext) -> Space:
    return Space("raw", "x", dict(features=f"raw vectors, {real.x.shape[1]}-d"),
                 lambda x: {"x": x.detach().float().cpu()})


SPACES.register("inception")(SpaceSpec(_inception_space, doc="FID Inception pool3 (2048-d) and logits; needs the "
                                                             "weights file"))
SPACES.register("domain")(SpaceSpec(_domain_space, check=lambda d: domain.check_labelled(d.x, d.labels),
                                    doc="a small CNN trained on the dataset's own labels (128-d)"))
SPACES.register("selfsup")(SpaceSpec(_selfsup_space, check=lambda d: selfsup.check_images(d.x),
                                     doc="a small CNN trained on the real images without labels (SimCLR, 256-d)"))
SPACES.register("raw")(SpaceSpec(_raw_space, doc="the vectors themselves"))


def check_metrics(names: list[str], real: Data) -> None:
    """Raise one clear GanforgeError if any metric in `names` cannot be computed on `real` (wrong kind, no labels,
    ...), before anything is trained or extracted."""
    for nm in names:
        spec = METRICS.get(nm)
        space = spec.spaces.get(real.kind)
        if space is None:
            raise GanforgeError(f"metric {spec.name!r} is for {' or '.join(spec.spaces)} data, but "
                                f"{real.name!r} is {real.kind} data")
        for check in (SPACES.get(space).check, spec.check):
            if check is not None:
                try:
                    check(real)
                except GanforgeError as e:
                    raise GanforgeError(f"metric {nm!r}: {e}") from None


def metric_options(name: str, given: dict | None, unknown: list[str] | None = None) -> dict:
    """The options of metric `name`: `given` checked against its options dataclass, defaults filled in.
    unknown: when a list is given, unknown keys are appended to it instead of raising (artefacts)."""
    cls = METRICS.options(name)
    if cls is None:
        if given and unknown is None:
            raise GanforgeError(f"metrics.{name}: the {name} metric has no options of its own; got "
                                f"{', '.join(sorted(given))}")
        if given:
            unknown.extend(f"metrics.{name}.{k}" for k in given)
        return {}
    return check_options(cls, given or {}, f"metrics.{name}", unknown=unknown)


def evaluate(fake: torch.Tensor, real: Data, names: list[str] | str, *, n: int | None = None, seed: int = 0,
             device: str = "cpu", cache: str | Path | None | bool = None, data_key: str = "",
             batch_size: int = 64, options: dict[str, dict] | None = None,
             fake_labels: torch.Tensor | None = None, heldout: Data | None = None) -> dict[str, MetricResult]:
    """Compute metrics `names` of `fake` (uint8 [N, C, H, W] or float32 [N, D], as `Data.x`; text: a list of
    strings or int64 token ids [N, L]) against `real`.

    n: caps the real items used (a random subset drawn with `seed`; all if None).
    seed: drives that subset, the KID subsets and the IS shuffle (`seed=2020` reproduces torch-fidelity's defaults).
    cache: directory for reference features, domain classifiers and the Inception weights (default `cache_dir()`);
        False keeps nothing on disk (the weights are still looked up in `cache_dir()`).
    data_key: names the dataset + preprocessing in cache keys (identity also includes a hash of the tensor).
    options: per-metric options {name: {key: value}} for metrics that have options of their own.
    fake_labels: int64 [N] classes the samples were generated for (a conditional generator), for class_acc/class_fd.
    heldout: real data of the same kind and shape the generator never trained on (a test split), for the
        metrics that compare with unseen data (memorisation, the two-sample test, the text metrics' references);
        None where there is none.
    Features of each feature space are extracted once per set and shared by the metrics that use that space.
    """
    names = [s.strip() for s in names.split(",") if s.strip()] if isinstance(names, str) else list(names)
    specs = [METRICS.get(nm) for nm in names]
    opts = {nm: metric_options(nm, (options or {}).get(nm)) for nm in names}
    check_metrics(names, real)
    fake = _check_fake(fake, real)
    if len(fake) == 0:
        raise GanforgeError("no generated samples to evaluate: a metric of an empty set means nothing")
    for spec in specs:
        if spec.needs_labels and fake_labels is None:
            raise GanforgeError(f"metric {spec.name!r} needs the classes the samples were generated for: it is for "
                                "class-conditional generators (model.conditional)")
    if fake_labels is not None and (fake_labels.shape != (len(fake),) or real.labels is None):
        raise GanforgeError(f"fake_labels: expected {len(fake)} labels of a labelled dataset, got "
                            f"{tuple(fake_labels.shape)}")
    cache_root = Path(cache) if cache not in (None, True, False) else cache_dir()
    store = None if cache is False else cache_root  # where reference features and classifiers are kept
    if n is not None and n < 1:
        raise GanforgeError(f"n (the number of real items) must be positive, got {n}")
    n_all = len(real)
    if n is None or n >= n_all:
        real_idx, subset = None, f"all {n_all}"
    else:
        g = torch.Generator().manual_seed(seed)
        real_idx, subset = torch.randperm(n_all, generator=g)[:n].sort().values, f"random {n} of {n_all} (seed {seed})"
    n_real = n_all if real_idx is None else n

    groups: dict[str, list[MetricSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.spaces[real.kind], []).append(spec)

    ctx = SpaceContext(cache_root, store, device, batch_size, data_key)
    if heldout is not None and (heldout.kind != real.kind or heldout.shape != real.shape):
        raise GanforgeError(f"heldout: expected {real.kind} data of shape {list(real.shape)} like the real set, "
                            f"got {heldout.kind} {list(heldout.shape)}")
    x_real = real.x if real_idx is None else real.x[real_idx]
    results: dict[str, MetricResult] = {}
    for space_name, group in groups.items():
        shared = {k: v for spec in group for k, v in opts[spec.name].items()}
        ctx = SpaceContext(cache_root, store, device, batch_size, data_key, shared)
        space = SPACES.get(space_name).build(real, ctx)
        fake_feats = space.extract(fake)
        ref = None
        if any(s.needs_real for s in group):
            key = dict(data_key=data_key, dataset=real.name, data_sha256=tensor_sha256(real.x),
                       split=real.info.get("split"), n_real=n_real, subset=subset)
            ref = reference_features(space, x_real, key, store)
        real_labels = None if real.labels is None else (real.labels if real_idx is None else real.labels[real_idx])
        for spec in group:
            inp = Inputs(space, fake_feats, ref, real, seed, device, opts[spec.name], fake_labels, real_labels,
                         fake, x_real, real_idx, heldout)
            values, extra = spec.compute(inp)
            protocol = dict(
                metric=spec.name, **space.protocol, **extra,
                **({"options": opts[spec.name]} if opts[spec.name] else {}), n_fake=len(fake),
                n_real=n_real if spec.needs_real else None, real_subset=subset if spec.needs_real else None,
                reference=dict(dataset=real.name, data_key=data_key, split=real.info.get("split")), seed=seed)
            results[spec.name] = MetricResult(spec.name, values, protocol)
    return {nm: results[nm] for nm in names}
