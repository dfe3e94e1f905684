"""Mode coverage on stacked digits (1,000 modes): the VEEGAN / PacGAN Stacked-MNIST protocol.

Feature space `stacked`: a digit classifier (ganforge's domain CNN, `domain.domain_classifier`) labels each of
the three channels of a uint8 [N, 3, H, W] image; the features are the mode indices
`100 c_r + 10 c_g + c_b` ("modes", int64 [N]) and the per-channel class probabilities ("probs", [N, 3, 10]).

The classifier is trained on the single digits of the train part of stacked-digits' fixed split (the digits the
stacked images are drawn from) at the data's resolution, each digit also shifted by one pixel up, down, left and
right (held-out accuracy measured here with / without the shifts: 97.8% / 98.2% at 8x8, 98.2% / 95.8% at
16x16); it is cached on disk like every domain classifier. Its accuracy is measured on the held-out digits,
which neither it nor a generator trained on the set has seen, and stamped in the protocol with the expected
accuracy of a whole triple (its cube). A misread channel moves a sample to a neighbouring mode: the count of a
generator that covers few modes is inflated by such misreads (at 94.7% per triple, 1,500 real samples of 100
modes read as 117 at 16x16), and below 90% per triple the protocol calls the counts unreliable (with a warning).

Metric `stacked_modes`: `modes` = the number of the 1,000 modes with at least one sample, `reverse_kl` =
KL(p_fake || uniform) = log 1000 - H(p_fake) in nats from the histogram of predicted modes (PacGAN computes
KL(p_fake || p_data); the data are uniform over the modes up to sampling), `n` = the samples scored (the papers
use 26,000); `reverse_kl` = `marginal_kl` + `dependence` exactly (see `mode_coverage`), and `rare_modes` counts
the modes with fewer than 5 samples. A finite sample has a reverse KL above 0 even when it is drawn from the data: about
999 / (2 n) nats (0.02 at n = 26,000, ~0.3 at n = 2,000).
"""
from __future__ import annotations

import math
import warnings

import torch

from ..data.base import Data
from ..data.stacked import N_MODES, modes_of, single_digits
from ..errors import GanforgeError
from . import domain
from .evaluate import DOMAIN_SEED, METRICS, SPACES, Inputs, MetricSpec, SpaceContext, SpaceSpec
from .features import FeatureDict, Space

SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))   # (dy, dx) copies of each training digit
RELIABLE_TRIPLE_ACCURACY = 0.9                        # below it the protocol calls the mode counts unreliable
RARE = 5                                              # rare_modes: the modes with fewer samples than this
CLASSIFIER_STEPS = 3000                               # a longer recipe than the domain metrics': misreads inflate
                                                      # mode counts (capped at the domain recipe's 50 epochs)


def _check_stacked(data: Data) -> None:
    if data.name != "stacked-digits":
        raise GanforgeError(f"the stacked_modes metric is defined for the stacked-digits data set, not {data.name!r}")
    if data.kind != "image" or data.x.ndim != 4 or data.x.shape[1] != 3:
        raise GanforgeError(f"stacked_modes needs uint8 images [N, 3, H, W], got {tuple(data.x.shape)}")


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images [N, C, H, W] moved by (dy, dx) pixels, the uncovered border filled with 0 (the digits' background)."""
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        x[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def digit_classifier(resolution: int, store, device: str = "cpu") -> tuple[domain.DomainNet, dict]:
    """The cached digit classifier at `resolution` -> (net, protocol incl. its held-out accuracy)."""
    x, y = single_digits(resolution, "train")
    x_aug = torch.cat([shifted(x, dy, dx) for dy, dx in SHIFTS])
    y_aug = y.repeat(len(SHIFTS))
    res = x.shape[-1]
    net, info = domain.domain_classifier(x_aug, y_aug, 10, f"stacked-digits-{res}-train", DOMAIN_SEED, store, device,
                                         min_steps=CLASSIFIER_STEPS)
    x_test, y_test = single_digits(resolution, "test")
    pred = domain.domain_features(net, x_test, 512, device)["logits"].argmax(1)
    acc = float((pred == y_test).double().mean())
    triple = acc ** 3
    proto = dict(features=f"per-channel digit classes ({domain.ARCH}, argmax) -> mode 100 r + 10 g + b",
                 classifier=info["key"], classifier_seed=info["seed"], classifier_steps=info["steps"],
                 classifier_n_train=f"{len(x)} train digits x {len(SHIFTS)} (1-pixel shifts), {res}x{res}",
                 classifier_accuracy=acc, classifier_n_test=len(x_test), triple_accuracy=triple)
    if triple < RELIABLE_TRIPLE_ACCURACY:
        proto["warning"] = (f"the classifier reads a whole triple right {triple:.1%} of the time (< "
                            f"{RELIABLE_TRIPLE_ACCURACY:.0%}): mode counts and reverse KL are unreliable")
        warnings.warn(f"stacked_modes: {proto['warning']}", stacklevel=2)
    return net, proto


def _stacked_space(real: Data, ctx: SpaceContext) -> Space:
    _check_stacked(real)
    shape = tuple(real.x.shape[1:])
    net, proto = digit_classifier(shape[-1], ctx.store, ctx.device)

    def extract(x: torch.Tensor) -> FeatureDict:
        if tuple(x.shape[1:]) != shape:
            raise GanforgeError(f"the stacked_modes classifier reads images {shape}, got {tuple(x.shape[1:])}")
        n, c, h, w = x.shape
        logits = domain.domain_features(net, x.reshape(n * c, 1, h, w), max(ctx.batch_size, 512),
                                        ctx.device)["logits"].view(n, c, -1)
        return {"modes": modes_of(logits.argmax(2)), "probs": logits.softmax(2)}

    return Space("stacked", "modes", proto, extract)


def _kl_to_uniform(counts: torch.Tensor) -> float:
    p = counts[counts > 0] / counts.sum()
    return math.log(len(counts)) + float((p * p.log()).sum())


def mode_coverage(modes: torch.Tensor, n_modes: int = N_MODES) -> dict[str, float]:
    """Mode indices [N] -> modes covered, KL(histogram || uniform over n_modes) in nats, n; for the 1,000 digit
    triples also where that KL comes from. The uniform law over triples is the product of three uniform digits,
    so the KL splits exactly into the three channels' own KLs to uniform (`marginal_kl`, their sum: a channel
    that draws some digits too rarely) plus the dependence between the channels (`dependence`, the KL of the
    histogram to the product of its marginals: a generator that couples its channels, so that some triples are
    rarer than their digits), and `rare_modes` counts the modes with fewer than 5 samples (near full coverage the
    count of empty modes is a noisy statistic; these are the modes one more draw could empty)."""
    counts = torch.bincount(modes.long().cpu(), minlength=n_modes).double()
    out = dict(modes=int((counts > 0).sum()), reverse_kl=_kl_to_uniform(counts), n=int(counts.sum()))
    if n_modes == N_MODES:
        cube = counts.view(10, 10, 10)  # [r, g, b]: mode = 100 r + 10 g + b
        marginal = sum(_kl_to_uniform(cube.sum(dims)) for dims in ((1, 2), (0, 2), (0, 1)))
        out.update(marginal_kl=marginal, dependence=out["reverse_kl"] - marginal, rare_modes=int((counts < RARE).sum()))
    return out


def _stacked_modes(inp: Inputs) -> tuple[dict[str, float], dict]:
    return mode_coverage(inp.fake["modes"]), dict(
        protocol="Stacked MNIST (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018), on 8x8 digits",
        mode="argmax class of each channel", n_modes=N_MODES,
        reverse_kl="KL(predicted mode histogram || uniform over 1000) = log 1000 - H, nats",
        marginal_kl="sum over the 3 channels of KL(channel's digit histogram || uniform over 10), nats",
        dependence="reverse_kl - marginal_kl = KL(histogram || product of its channel marginals), nats",
        rare_modes=f"modes with fewer than {RARE} samples",
        papers_n=26_000)


SPACES.register("stacked")(SpaceSpec(_stacked_space, check=_check_stacked,
                                     doc="the mode (digit triple) of a stacked-digits image, by a digit classifier"))
METRICS.register("stacked_modes")(MetricSpec(
    "stacked_modes", "Stacked-digits mode coverage: modes (of 1,000), reverse_kl (nats) = marginal_kl + dependence, "
    "rare_modes (< 5 samples), n", {"image": "stacked"},
    _stacked_modes, needs_real=False, check=_check_stacked))
