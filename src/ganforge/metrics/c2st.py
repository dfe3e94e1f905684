"""Classifier two-sample test (C2ST; Lopez-Paz & Oquab 2017, "Revisiting classifier two-sample tests").

A classifier learns to tell real (label 0) from generated (label 1) samples on one half of the data and is scored
on the other half. Held-out accuracy 0.5 means it found nothing that tells the sets apart; 1.0 means they are
trivially separable. Unlike a distance (FID, KID) the number has a scale of its own and comes with a test:
under H0 "same distribution" the held-out accuracy of any classifier fit on independent data is Binomial(n, 1/2)/n.

Protocol, as computed here:
- balance: n = min(#real, #fake, max_per_class) samples per class, drawn by a seeded permutation of each set;
- split: the first n // 2 of each class's permutation train, the rest test (stratified: the classes stay equal);
- `c2st_features` (vectors [N, D]): features standardised with the training part's mean / std, then an MLP
  (one hidden layer of 128 ReLU units), full-batch Adam (lr 1e-2, L2 1e-3) for 300 steps;
- `c2st_images` (uint8 [N, C, H, W]): images area-downsampled to at most 32x32, a 3-conv CNN, minibatch Adam
  (batch 128) for a fixed number of epochs: 5, or as many as make 300 steps on small sets, at most 50;
- training is deterministic on CPU: one intra-op thread, seeded init inside `torch.random.fork_rng`, explicit
  torch.Generator for the permutations; the caller's global RNG is untouched;
- outputs on the test half: accuracy with its 95% Wilson interval, AUC of the predicted P(fake) (Mann-Whitney,
  ties counted half) with its 95% DeLong interval (DeLong et al. 1988, the fast midrank form of Sun & Xu 2014),
  and the one-sided p-value of H0 "accuracy = 1/2" from the normal approximation of Lopez-Paz & Oquab
  (accuracy ~ N(1/2, 1/(4 n_test)) under H0).

Why an MLP and not a logistic regression (measured here, AUC on the test half, 5,000 per class, real N(0, I),
16-d / 128-d; logistic vs this MLP): a mean shift of 3 in one coordinate 0.983 / 0.978 vs 0.979 / 0.974; of 0.3
0.583 / 0.549 vs 0.525 / 0.514; of 0.1 in every coordinate 0.606 / 0.771 vs 0.550 / 0.718; a spread 1.15x
0.501 / 0.498 vs 0.649 / 0.636; 1.3x 0.500 / 0.500 vs 0.824 / 0.883; 8 tight blobs on a ring (2-d, 1,000 per
class) vs uniform noise over their box 0.495 vs 0.996. A logistic regression sees nothing but a shift of the means
(a generator that drops modes or shrinks the spread passes it); the MLP gives up some power on weak shifts. Its
L2 is a compromise: none overfits in 128-d (shift of 3: 0.935, spread 1.3x: 0.636), 1e-2 gains on weak shifts
(0.578 / 0.528) but cannot fit the ring (0.546); 1,000 or 3,000 steps instead of 300 change little.

What it cannot tell: a C2ST near 0.5 says this classifier, with this much data, found no difference; a generator
that copies its training set is indistinguishable from that set, hence the metric prefers held-out real data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import GanforgeError
from .evaluate import METRICS, Inputs, MetricSpec

Z95 = 1.959963984540054          # two-sided 95% normal quantile
HIDDEN = 128                     # hidden ReLU units of the feature classifier (0: logistic regression)
MLP_STEPS = 300                  # full-batch Adam steps on features
MLP_LR = 1e-2
MLP_WEIGHT_DECAY = 1e-3         # torch Adam's L2 (added to the gradient); the docstring says why this much
MAX_SIDE = 32                    # images are area-downsampled to at most this many pixels a side
CNN_EPOCHS = 5                   # at least this many epochs on pixels, ...
CNN_MIN_STEPS = 300              # ... more for small sets (at least this many minibatch steps), ...
CNN_MAX_EPOCHS = 50              # ... at most this many epochs
CNN_BATCH = 128
CNN_LR = 1e-3
MIN_PER_CLASS = 4                # two to train on and two to test on, per class


# ------------------------------------------------------------------------------------------------ statistics


def midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of x [n], tied values sharing the mean of their ranks -> float64 [n]."""
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)                      # rank of the last element of each tie group
    return (last - (counts - 1) / 2.0)[inv.reshape(-1)]


def auc_delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUC = P(score(pos) > score(neg)) + P(=)/2 (Mann-Whitney, ties half) and its DeLong variance.

    pos [m], neg [n] scores, m, n >= 2 for the variance (a single sample per class gives variance nan).
    """
    pos, neg = np.asarray(pos, np.float64).ravel(), np.asarray(neg, np.float64).ravel()
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise GanforgeError(f"an AUC needs scores of both classes, got {m} and {n}")
    tz = midranks(np.concatenate([pos, neg]))
    auc = (tz[:m].sum() - m * (m + 1) / 2.0) / (m * n)
    v10 = (tz[:m] - midranks(pos)) / n           # per positive: the fraction of negatives below it (ties half)
    v01 = 1.0 - (tz[m:] - midranks(neg)) / m     # per negative: the fraction of positives above it
    var = (v10.var(ddof=1) / m + v01.var(ddof=1) / n) if m > 1 and n > 1 else float("nan")
    return float(auc), float(var)


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k / n (95% by default)."""
    if n <= 0:
        raise GanforgeError(f"a proportion needs at least one trial, got {n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


def c2st_stats(p_fake: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Test-half predictions P(fake) [n] and labels [n] (1 = fake) -> acc, acc_lo, acc_hi, auc, auc_lo, auc_hi, p.

    Accuracy thresholds P(fake) at 1/2; its interval is Wilson's; the AUC interval is auc +- 1.96 DeLong SE,
    clipped to [0, 1]; p = P(accuracy >= observed | H0) with accuracy ~ N(1/2, 1/(4 n)) under H0.
    """
    p_fake, y = p_fake.detach().double().cpu(), y.cpu().long()
    n = len(y)
    correct = int(((p_fake > 0.5).long() == y).sum())
    acc = correct / n
    lo, hi = wilson_interval(correct, n)
    auc, var = auc_delong(p_fake[y == 1].numpy(), p_fake[y == 0].numpy())
    se = math.sqrt(max(var, 0.0))
    p = 0.5 * math.erfc((acc - 0.5) * 2 * math.sqrt(n) / math.sqrt(2))
    return dict(acc=acc, acc_lo=lo, acc_hi=hi, auc=auc, auc_lo=max(0.0, auc - Z95 * se),
                auc_hi=min(1.0, auc + Z95 * se), p=p)


# ------------------------------------------------------------------------------------------------ the split


def _split(n_real: int, n_fake: int, seed: int, max_per_class: int | None) -> tuple[torch.Tensor, ...]:
    """Balanced, stratified split -> (real train, real test, fake train, fake test) index tensors."""
    n = min(n_real, n_fake, max_per_class or max(n_real, n_fake))
    if n < MIN_PER_CLASS:
        raise GanforgeError(f"a classifier two-sample test needs at least {MIN_PER_CLASS} real and "
                            f"{MIN_PER_CLASS} generated samples, got {n_real} and {n_fake}")
    g = torch.Generator().manual_seed(seed)
    pr, pf = torch.randperm(n_real, generator=g)[:n], torch.randperm(n_fake, generator=g)[:n]
    k = n // 2
    return pr[:k], pr[k:], pf[:k], pf[k:]


def _labels(n0: int, n1: int) -> torch.Tensor:
    return torch.cat([torch.zeros(n0), torch.ones(n1)])


class _OneThread:
    """One intra-op thread on CPU while training (results independent of the caller's thread count, and faster
    for these small ops on a shared CPU; see `domain.train_domain_classifier`)."""

    def __init__(self, device: torch.device) -> None:
        self.cpu = device.type == "cpu"

    def __enter__(self) -> None:
        self.threads = torch.get_num_threads()
        if self.cpu:
            torch.set_num_threads(1)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.threads)


def _seeded(build, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):   # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        return build()


# ------------------------------------------------------------------------------------------------ features


def _mlp(d: int, hidden: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(d, 1)                # logistic regression
    return nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 1))


def c2st_features(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, max_per_class: int | None = 5000,
                  hidden: int = HIDDEN, steps: int = MLP_STEPS, device: str | torch.device = "cpu") -> dict:
    """C2ST on feature vectors real [N, D], fake [M, D] -> dict(acc, acc_lo, acc_hi, auc, auc_lo, auc_hi, p,
    n_train, n_test) (n_* per class).

    hidden: the MLP's hidden width (0: logistic regression); steps: full-batch Adam steps.
    """
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise GanforgeError(f"c2st: feature sets must be [N, D] with one D, got {tuple(real.shape)} and "
                            f"{tuple(fake.shape)}")
    device = torch.device(device)
    rtr, rte, ftr, fte = _split(len(real), len(fake), seed, max_per_class)
    real, fake = real.detach().float().cpu(), fake.detach().float().cpu()
    x_tr, x_te = torch.cat([real[rtr], fake[ftr]]), torch.cat([real[rte], fake[fte]])
    y_tr, y_te = _labels(len(rtr), len(ftr)), _labels(len(rte), len(fte))
    mu, sd = x_tr.mean(0), x_tr.std(0)
    sd = torch.where(sd > 1e-8 * sd.max().clamp_min(1e-30), sd, torch.ones_like(sd))  # constant features stay 0
    x_tr, x_te = ((x_tr - mu) / sd).to(device), ((x_te - mu) / sd).to(device)
    with _OneThread(device):
        net = _seeded(lambda: _mlp(x_tr.shape[1], hidden), seed).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=MLP_LR, weight_decay=MLP_WEIGHT_DECAY)
        target = y_tr.to(device)
        for _ in range(steps):
            loss = F.binary_cross_entropy_with_logits(net(x_tr).squeeze(1), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            p_fake = torch.sigmoid(net(x_te).squeeze(1)).cpu()
    return dict(c2st_stats(p_fake, y_te), n_train=len(rtr), n_test=len(rte))


# ------------------------------------------------------------------------------------------------ pixels


class _PixelNet(nn.Module):
    """Images in [-1, 1] [N, C, H, W] -> logit of "generated" [N]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


def downsample(x: torch.Tensor, max_side: int = MAX_SIDE) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> float [N, C, h, w] in [-1, 1], area-downsampled so that max(h, w) <= max_side
    (the aspect ratio kept; never upsampled)."""
    h, w = x.shape[-2:]
    out = x.float() / 127.5 - 1
    if max(h, w) > max_side:
        s = max_side / max(h, w)
        out = F.interpolate(out, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
    return out


def c2st_images(real: torch.Tensor, fake: torch.Tensor, seed: int = 0, max_per_class: int | None = 5000,
                device: str | torch.device = "cpu") -> dict:
    """C2ST on the pixels of uint8 images real [N, C, H, W], fake [M, C, H, W] -> the dict of `c2st_features`
    (plus `epochs` and `size`, the side lengths trained on)."""
    for nm, t in (("real", real), ("fake", fake)):
        if t.dtype != torch.uint8 or t.ndim != 4:
            raise GanforgeError(f"c2st on pixels needs uint8 images [N, C, H, W]; the {nm} set is {t.dtype} "
                                f"{tuple(t.shape)}")
    if real.shape[1:] != fake.shape[1:]:
        raise GanforgeError(f"c2st: real and generated images differ in shape: {tuple(real.shape[1:])} and "
                            f"{tuple(fake.shape[1:])}")
    device = torch.device(device)
    rtr, rte, ftr, fte = _split(len(real), len(fake), seed, max_per_class)
    x_tr = downsample(torch.cat([real[rtr], fake[ftr]]))
    x_te = downsample(torch.cat([real[rte], fake[fte]]))
    y_tr, y_te = _labels(len(rtr), len(ftr)), _labels(len(rte), len(fte))
    steps_per_epoch = math.ceil(len(x_tr) / CNN_BATCH)
    epochs = min(CNN_MAX_EPOCHS, max(CNN_EPOCHS, math.ceil(CNN_MIN_STEPS / steps_per_epoch)))
    g = torch.Generator().manual_seed(seed + 1)
    with _OneThread(device):
        net = _seeded(lambda: _PixelNet(real.shape[1]), seed).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=CNN_LR)
        net.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x_tr), generator=g)
            for s in range(0, len(x_tr), CNN_BATCH):
                b = perm[s:s + CNN_BATCH]
                loss = F.binary_cross_entropy_with_logits(net(x_tr[b].to(device)), y_tr[b].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        net.eval()
        with torch.no_grad():
            p_fake = torch.cat([torch.sigmoid(net(x_te[s:s + 512].to(device))).cpu()
                                for s in range(0, len(x_te), 512)])
    return dict(c2st_stats(p_fake, y_te), n_train=len(rtr), n_test=len(rte), epochs=epochs,
                size=list(x_tr.shape[-2:]))


# ------------------------------------------------------------------------------------------------ the metric

ON = ("features", "pixels")


@dataclass
class C2STOptions:
    on: str = "features"        # what the classifier reads: "features" (the metric's feature space) or "pixels"
    max_per_class: int = 5000   # at most this many real and as many generated samples (half train, half test)

    def __post_init__(self) -> None:
        if self.on not in ON:
            raise GanforgeError(f"metrics.c2st.on: expected one of {', '.join(ON)}, got {self.on!r}")
        if self.max_per_class < MIN_PER_CLASS:
            raise GanforgeError(f"metrics.c2st.max_per_class: must be >= {MIN_PER_CLASS}, got {self.max_per_class}")


def _c2st(inp: Inputs) -> tuple[dict[str, float], dict]:
    on, cap = inp.options.get("on", "features"), inp.options.get("max_per_class", 5000)
    if inp.heldout is not None:
        split = inp.heldout.info.get("split")
        which = (f"held-out {inp.heldout.name}" + (f" ({split} split)" if split else "") +
                 f", {len(inp.heldout)} items the generator never trained on")
        real_x = inp.heldout.x
    else:
        which = (f"the {len(inp.real_x)} reference real items (the generator may have trained on them: a copy of "
                 "its training set would score 0.5)")
        real_x = inp.real_x
    if on == "pixels":
        if inp.data.kind != "image":
            raise GanforgeError(f"metrics.c2st.on=pixels is for image data; {inp.data.name!r} is {inp.data.kind} "
                                "data (use on=features)")
        r = c2st_images(real_x, inp.fake_x, inp.seed, cap, inp.device)
        classifier = (f"CNN 3x conv3x3 (16, 32, 64) + ReLU, 2 max-pools, global average, linear; pixels area-"
                      f"downsampled to {r['size'][0]}x{r['size'][1]} in [-1, 1]; Adam lr {CNN_LR}, batch "
                      f"{CNN_BATCH}, {r['epochs']} epochs")
    else:
        k = inp.space.main
        real_f = inp.space.extract(real_x)[k] if inp.heldout is not None else inp.real.features[k]
        r = c2st_features(real_f, inp.fake[k], inp.seed, cap, device=inp.device)
        classifier = (f"MLP {real_f.shape[1]}-{HIDDEN}-1 (ReLU) on '{k}' standardised with the training half's "
                      f"mean / std; full-batch Adam lr {MLP_LR}, L2 {MLP_WEIGHT_DECAY}, {MLP_STEPS} steps")
    values = {f"c2st_{n}": r[n] for n in ("acc", "acc_lo", "acc_hi", "auc", "auc_lo", "auc_hi", "p")}
    return values, dict(
        test="classifier two-sample test (Lopez-Paz & Oquab 2017): held-out accuracy 0.5 = indistinguishable",
        classifier=classifier, real_data=which, n_per_class=r["n_train"] + r["n_test"],
        split=f"balanced, stratified: {r['n_train']} train + {r['n_test']} test per class (seeded permutation, "
              f"seed {inp.seed})",
        ci="95%: accuracy Wilson score; AUC (Mann-Whitney, ties half) +- 1.96 DeLong SE",
        p_value=f"one-sided, H0 accuracy = 1/2, normal approximation N(1/2, 1/(4 n)), n = {2 * r['n_test']} test "
                "samples (Lopez-Paz & Oquab 2017)")


METRICS.register("c2st", options=C2STOptions)(MetricSpec(
    "c2st", "classifier two-sample test, held-out accuracy / AUC (0.5 = indistinguishable) with 95% intervals: "
    "c2st_acc, c2st_auc, c2st_p", {"image": "selfsup", "vector": "raw"}, _c2st))
