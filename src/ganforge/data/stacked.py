"""Stacked digits: three of scikit-learn's 8x8 digits as the R, G, B channels of one image (1,000 modes).

The Stacked-MNIST mode-coverage benchmark (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018; R3GAN,
Huang et al. 2024) built from data that ships with scikit-learn: a mode is the triple of classes
(c_r, c_g, c_b), labelled `100 c_r + 10 c_g + c_b` ("3-7-1"), 10^3 = 1,000 modes.

The 1,797 digits are split once, by a fixed permutation (`SPLIT_SEED`, not `data.seed`), into a train part
(1,348 digits) and a held-out part (449). The stacked images are drawn from the train part only
(`data.split=test` draws them from the held-out part instead); the `stacked_modes` metric trains its digit
classifier on the train part and measures its accuracy on the held-out part, digits neither the classifier
nor a generator trained on this set has seen. `data.seed` draws the `count` triples, uniformly over the
digits of the part (so each mode has probability ~1/1000).

`data.resolution` > 8 resizes the single digits once, with the `digits` loader itself (the loaders' one
resampling filter, ganforge.utils.images.resize); the stacked images are then indexed from them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import DataConfig
from ..errors import GanforgeError
from ..utils import images
from .base import DATASETS, Data
from .digits import digits

N_DIGITS = 1797        # scikit-learn's digits
SPLIT_SEED = 0         # the fixed train / held-out split of the single digits (never data.seed)
N_HELD_OUT = 449       # a quarter of the digits: held out for the mode classifier's accuracy
N_MODES = 1000
SPLITS = ("train", "test")


@dataclass
class StackedOptions:
    count: int = 100_000   # images drawn

    def __post_init__(self) -> None:
        if self.count < 1:
            raise GanforgeError(f"data.count: the number of stacked images must be >= 1, got {self.count}")


def split_indices() -> dict[str, np.ndarray]:
    """{"train": indices, "test": indices} into the 1,797 digits: the fixed split, sorted."""
    perm = np.random.default_rng(SPLIT_SEED).permutation(N_DIGITS)
    return {"test": np.sort(perm[:N_HELD_OUT]), "train": np.sort(perm[N_HELD_OUT:])}


def single_digits(resolution: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The single digits of one part of the fixed split at `resolution` (0 = 8): (uint8 [n, 1, H, W], int64 [n]),
    built by the `digits` loader (so they are resampled exactly as `data.name=digits` is)."""
    if split not in SPLITS:
        raise GanforgeError(f"data.split: stacked digits have the parts {' and '.join(SPLITS)} (train: the "
                            f"{N_DIGITS - N_HELD_OUT} digits stacked by default; test: the {N_HELD_OUT} held out "
                            f"for the mode classifier), got {split!r}")
    d = digits(DataConfig(name="digits", resolution=resolution))
    idx = torch.from_numpy(split_indices()[split])
    return d.x[idx].contiguous(), d.labels[idx].contiguous()


def mode_names() -> list[str]:
    """The 1,000 class names, "r-g-b" (mode index 100 r + 10 g + b)."""
    return [f"{m // 100}-{m // 10 % 10}-{m % 10}" for m in range(N_MODES)]


def modes_of(classes: torch.Tensor) -> torch.Tensor:
    """Per-channel classes [N, 3] -> mode indices [N] (int64): 100 c_r + 10 c_g + c_b."""
    c = classes.long()
    return 100 * c[:, 0] + 10 * c[:, 1] + c[:, 2]


@DATASETS.register("stacked-digits", options=StackedOptions,
                   doc="three 8x8 digits as R, G, B (Stacked-MNIST-style, 1,000 modes), built in")
def stacked_digits(cfg) -> Data:
    res = cfg.resolution or 8
    if cfg.width and cfg.width != res:
        raise GanforgeError("data.width: stacked digits are square; set only data.resolution")
    if cfg.channels not in (0, 3):
        raise GanforgeError(f"data.channels: stacked digits have 3 channels (one digit each), got {cfg.channels}")
    count = cfg.options["count"] if "count" in cfg.options else StackedOptions().count
    StackedOptions(count)  # checks it
    x1, y1 = single_digits(cfg.resolution, cfg.split)  # [n, 1, H, W]; resolution < 8 is refused there
    rng = np.random.default_rng(cfg.seed)
    pick = torch.from_numpy(rng.integers(0, len(x1), size=(count, 3)))  # [N, 3]: digit index per channel
    if cfg.max_items:
        pick = pick[: cfg.max_items]
    x = x1[:, 0][pick]                                                    # [N, 3, H, W]
    classes = y1[pick]                                                    # [N, 3]
    return Data(x=x.contiguous(), kind="image", name="stacked-digits", labels=modes_of(classes),
                class_names=mode_names(),
                info=dict(source="sklearn.datasets.load_digits, three per image (R, G, B)", resolution=res,
                          split=cfg.split, digits_in_split=len(x1), split_seed=SPLIT_SEED, count=count,
                          seed=cfg.seed, modes=N_MODES,
                          metrics=["stacked_modes"], eval_n=26_000,  # how `ganforge eval` measures it: VEEGAN
                          digit_index=pick,     # [N, 3] indices into single_digits(resolution, split)
                          preprocessing=[f"digits resized to {res}x{res} ({images.RESAMPLE_NAME})"]
                          if res != 8 else []))
