"""Presets that look at the data: `ganforge train DIR` (the `folder` preset) surveys a folder of images and
chooses resolution, architecture, batch, augmentation, tick metrics and tick length for it, saying why.

Only keys the user did not set (with --set) are chosen; the rest of the `folder` preset is its YAML. The survey
reads the headers of up to SURVEY_MAX images spread over the folder (no decoding), so it takes a moment even on
a folder of a million files. The rules and the measurements behind them are in docs/howto.md ("Train on your
own images") and docs/benchmarks.md.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from .config import Config, set_key
from .errors import GanforgeError
from .utils.images import IMAGE_EXTS, list_images, natural_kind

SURVEY_MAX = 256          # image headers read by the survey
MIN_IMAGES = 8            # the smallest batch the preset uses
CPU_MAX_SIDE = 64         # resolution cap on CPU (in pixels: 64x64): a DCGAN step costs ~4x per doubling of the side
GPU_MAX_SIDE = 256        # resolution cap on a GPU (the r3gan family goes to 256)
SMALL_DATA = 30_000       # fewer images: differentiable augmentation, always on (DiffAugment, Zhao et al. 2020:
                          # CIFAR-10 at 10-20%, 5-10k images; ADA, Karras et al. 2020: it helps up to ~30k)


@dataclass
class Survey:
    n: int                                     # image files found
    sizes: list[tuple[int, int]]               # (width, height) of the surveyed images
    kinds: set[str]                            # "L" | "RGB" | "RGBA" among them
    classes: list[str] = field(default_factory=list)  # first-level subfolders, when every image is in one
    unreadable: int = 0                        # surveyed files whose header could not be read

    @property
    def same_size(self) -> bool:
        return len(set(self.sizes)) == 1

    @property
    def median_size(self) -> tuple[int, int]:
        return (int(statistics.median(w for w, _ in self.sizes)), int(statistics.median(h for _, h in self.sizes)))


SHORT_BUDGET_MIN = 30   # minutes: below it an unlabelled folder trains without tick metrics on a CPU


def survey(path: str | Path) -> Survey:
    """Count the images under `path` and read the headers of up to SURVEY_MAX of them, evenly spread."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise GanforgeError(f"data.path: {root} {'is not a directory' if root.exists() else 'does not exist'}; "
                            f"point it at a folder of {'/'.join(e[1:] for e in IMAGE_EXTS)} images")
    listing = list_images(root, unreadable=[])
    if not listing:
        raise GanforgeError(f"data.path: no images (.png, .jpg, .jpeg, .webp, .bmp) found under {root}; "
                            "check the path")
    rel = [r for r, _, _ in listing]
    step = max(1, len(rel) // SURVEY_MAX)
    sizes, kinds, bad = [], set(), 0
    for r in rel[::step][:SURVEY_MAX]:
        try:
            with Image.open(root / r) as im:  # the header only: no pixels are decoded
                w, h = im.size
                if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF rotation by 90 degrees: sides swap
                    w, h = h, w
                sizes.append((w, h))
                kinds.add(natural_kind(im))
        except Exception:  # noqa: BLE001  an unreadable header: the loader reports (or skips) the file
            bad += 1
    if not sizes:
        raise GanforgeError(f"data.path: none of the {len(rel[::step][:SURVEY_MAX])} surveyed images under {root} "
                            "could be read; check the files")
    labelled = all("/" in r for r in rel)
    classes = sorted({r.split("/", 1)[0] for r in rel}) if labelled else []
    return Survey(len(rel), sizes, kinds, classes if len(classes) >= 2 else [], bad)


def _pow2_at_most(x: int) -> int:
    p = 1
    while p * 2 <= x:
        p *= 2
    return p


def _halvable(h: int, w: int) -> bool:
    """The conv families' rule (models.dcgan.plan): both sides halve together at least once to >= 4."""
    return h % 2 == 0 and w % 2 == 0 and min(h, w) // 2 >= 4


def choose_geometry(s: Survey, max_side: int) -> tuple[int, int, str]:
    """(data.resolution, data.width, why): native when every image has one size that the nets take and no more
    pixels than max_side squared; else the largest power of two within the median short side and max_side, with
    the median aspect ratio kept (width rounded to what the nets can halve down to 4 pixels)."""
    w, h = s.median_size
    if s.same_size and w * h <= max_side ** 2 and _halvable(h, w):
        return 0, 0, f"native {w}x{h}: every surveyed image has this size, within {max_side}x{max_side} pixels"
    side = _pow2_at_most(min(min(w, h), max_side))
    if side < 8:
        raise GanforgeError(f"data.path: the images are tiny (median {w}x{h}); the conv nets need at least 8 "
                            "pixels a side: set data.resolution (e.g. 8 or 16) to upscale them")
    why = ("images of several sizes" if not s.same_size else f"{w}x{h} images") + \
        f": scaled to cover and centre-cropped; cap {max_side} on this device"
    ratio = max(w, h) / min(w, h)
    if ratio <= 1.05:
        return side, 0, f"{side}x{side} ({why})"
    unit = side // 4  # the nets halve both sides down to 4 pixels: the long side must be a multiple of side / 4
    long = min(max(round(side * ratio / unit), 4) * unit, 2 * max_side)
    height, width = (side, long) if w > h else (long, side)
    return height, width, f"{height}x{width} (HxW), the median aspect {w}:{h} kept ({why})"


def adapt_to_folder(cfg: Config, user_keys: set[str], device: str = "auto", minutes: float | None = None) -> list[str]:
    """Fill the `folder` preset's data-dependent keys that the user did not set; returns one line per choice."""
    if not cfg.data.path:
        raise GanforgeError("data.path: the folder preset needs a directory of images: `ganforge train DIR` or "
                            "`ganforge train folder --set data.path=DIR`")
    s = survey(cfg.data.path)
    if s.n < MIN_IMAGES:
        raise GanforgeError(f"data.path: only {s.n} image(s) under {cfg.data.path}; a GAN learns a distribution "
                            f"from many examples: give it at least {MIN_IMAGES} (a few hundred or more work well "
                            "with the augmentation the folder preset turns on)")
    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    notes = [f"folder {cfg.data.path}: {s.n} images, {'/'.join(sorted(s.kinds))}"
             + (f", {len(s.classes)} classes from subfolders" if s.classes else ", no labels (no class subfolders)")]

    def choose(key: str, value, why: str) -> None:
        if key in user_keys:
            return
        set_key(cfg, key, value, where="folder preset")
        notes.append(f"{key}={value}: {why}")

    if "data.resolution" not in user_keys:
        res, width, why = choose_geometry(s, GPU_MAX_SIDE if gpu else CPU_MAX_SIDE)
        choose("data.resolution", res, why)
        if width:
            choose("data.width", width, "keeps the aspect ratio")
    side = cfg.data.resolution or max(s.median_size)
    if gpu and side >= 128:
        choose("model.arch", "r3gan", f"{side} px on a GPU: the normalisation-free ResNet (R3GAN's recipe)")
        for k, v in (("model.g_norm", "none"), ("model.d_norm", "none"), ("loss.name", "relativistic"),
                     ("loss.r1_gamma", 0.5), ("loss.r2_gamma", 0.5), ("optim.g_betas", [0.0, 0.99]),
                     ("optim.d_betas", [0.0, 0.99]), ("optim.g_lr", 2e-4), ("optim.d_lr", 2e-4)):
            choose(k, v, "R3GAN's recipe")
    batch = 64 if s.n >= 2000 else max(8, _pow2_at_most(s.n // 8))
    choose("train.batch", batch, f"{s.n} images" + ("" if batch == 64 else ": smaller batches for few images"))
    if s.n >= SMALL_DATA and cfg.model.arch == "dcgan" and cfg.loss.r1_gamma == 0 and cfg.loss.r2_gamma == 0:
        choose("model.d_norm", "batch", f"{s.n:,} images, no augmentation: BatchNorm in D, as the `fashion` preset "
               "(on the Fashion-MNIST PNGs 8x lower domain_fd in a 1-minute budget, docs/benchmarks.md)")
    if s.n < SMALL_DATA:
        choose("augment.policy", ["color", "translation", "cutout"],
               f"fewer than {SMALL_DATA:,} images: D would memorise them (DiffAugment)")
        choose("augment.p", 1.0, "every image, as DiffAugment; on 2,000 Fashion-MNIST images ADA's adaptive p "
               "stayed near 0 and lost to it (docs/benchmarks.md)")
    if s.classes:
        choose("train.metrics", ["domain_fd", "class_kl"], "labels from subfolders: a classifier of them judges")
    elif minutes is not None and minutes < SHORT_BUDGET_MIN and not gpu:
        choose("train.metrics", [], f"no labels, and a --minutes budget under {SHORT_BUDGET_MIN}: the self-supervised "
               "network the label-free metrics need trains for about 3 minutes on a CPU, a large share of the budget; "
               "`ganforge eval RUN` measures afterwards")
    else:
        choose("train.metrics", ["ssl_fd", "diversity"], "no labels: distances in a network trained on these "
               "images without labels (it trains once, at the first tick: a few minutes on a CPU, then cached), and "
               "the samples' diversity for the mode-collapse alarm")
    choose("train.tick_kimg", 50 if side <= 32 else 20 if side <= 64 else 10, "a tick every minute or two")
    if s.unreadable:
        notes.append(f"warning: {s.unreadable} of the surveyed files could not be read; the loader will stop at "
                     "the first unreadable one (or skip them with --set data.skip_corrupt=true)")
    return notes


# ---- budget-aware presets (train.fit_budget) ------------------------------------------------------------------
# Under --minutes every schedule already follows the budget (ganforge.training.budget). What else a budget decides
# is how many optimisation steps it buys: on Fashion-MNIST a DCGAN's quality follows its number of G steps far more
# than its width or batch (docs/benchmarks.md, "What a budget buys"). So the rule measures, and takes the most
# capable configuration that still makes BUDGET_STEPS steps in the budget; when none does, the one making the most.
BUDGET_STEPS = 6000  # about the 6,250 steps (800 kimg at batch 128) the fashion preset was tuned with in 10 minutes
# (width factor, batch factor) relative to the preset, most capable first; widths and batches floored at the mins
BUDGET_CANDIDATES = ((1.0, 1.0), (1.0, 0.5), (0.5, 0.5), (0.5, 0.25), (0.25, 0.25))
# The last candidate, a quarter of the width, is the last resort: probed (and so chosen) only when no other makes
# LAST_RESORT_STEPS. One minute of Fashion-MNIST on two CPUs at 1 and 2 threads: where half the width and a quarter
# of the batch made or projected 600 to 2,600 steps, a quarter of the width was lower in domain_fd on every seed (8,
# by 1.3x to 12x); at 2,850 to 3,050 steps, level on one seed and higher on two (docs/benchmarks.md, "The last
# resort: a quarter of the width").
LAST_RESORT_STEPS = 2700
BUDGET_MIN_WIDTH, BUDGET_MIN_BATCH = 16, 32
PROBE_SHARE, PROBE_MAX_S = 0.01, 1.5  # each candidate's probe: this share of the budget, at most this long
                                      # (a DCGAN step at 28x28 on a 2-core CPU takes 0.05-0.25 s)
PROBE_TOTAL_SHARE = 0.25  # no further candidate is probed once the probes took this share of the budget: large
                          # images on a CPU take seconds a step, and a probe runs at least 5 of them (Fashion-MNIST's
                          # four probes took 5-10 s of a 1-minute budget, 8-17%, at 2 and 1 threads of an AVX2 EPYC;
                          # four or five took 4-6 s on an AVX512-BF16 EPYC)


def probe_seconds(minutes: float) -> float:
    return min(PROBE_MAX_S, PROBE_SHARE * 60.0 * minutes)


def budget_candidates(cfg: Config, user_keys: set[str]) -> list[dict]:
    """The configurations the rule may choose among, as {key: value} changes; keys the user set stay as set."""
    return [c for c, _ in _candidates(cfg, user_keys)]


def _candidates(cfg: Config, user_keys: set[str]) -> list[tuple[dict, bool]]:
    """(changes, last resort?) per distinct candidate, in BUDGET_CANDIDATES' order."""
    m, t = cfg.model, cfg.train
    out: list[tuple[dict, bool]] = []
    for i, (wf, bf) in enumerate(BUDGET_CANDIDATES):
        c = {"model.g_width": max(BUDGET_MIN_WIDTH, int(m.g_width * wf)),
             "model.d_width": max(BUDGET_MIN_WIDTH, int(m.d_width * wf)),
             "train.batch": max(min(BUDGET_MIN_BATCH, t.batch), int(t.batch * bf))}
        c = {k: v for k, v in c.items() if k not in user_keys}
        if all(c != seen for seen, _ in out):
            out.append((c, i == len(BUDGET_CANDIDATES) - 1))
    return out


def fit_to_budget(cfg: Config, user_keys: set[str], minutes: float, speed: Callable[[dict], float],
                  clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Choose width and batch for a --minutes budget from measured speeds; returns one line per choice.

    speed(changes) -> training images per second of `cfg` with `changes` applied (ganforge.training.probe): probed
    in order, stopping at the first candidate that makes BUDGET_STEPS steps, so a fast machine probes once, or
    once the probes took PROBE_TOTAL_SHARE of the budget (then the best of those probed wins). The last resort
    is probed only when no other candidate makes LAST_RESORT_STEPS."""
    budget_s = 60.0 * minutes
    cap = cfg.train.kimg * 1000.0  # a machine fast enough reaches train.kimg first: the preset as it is
    seen: list[tuple[dict, float, float]] = []
    cands = _candidates(cfg, user_keys)
    start, cut = clock(), ""
    for i, (c, last_resort) in enumerate(cands):
        best = max(seen, key=lambda s: s[2]) if last_resort and seen else None
        if best is not None and best[2] >= LAST_RESORT_STEPS:
            cut = (f"; {_short(c, cfg)} not probed: {_short(best[0], cfg)} already makes {LAST_RESORT_STEPS:,} "
                   "steps or more")
            break
        img_s = speed(c)
        batch = c.get("train.batch", cfg.train.batch)
        steps = min(img_s * budget_s, cap) / batch
        seen.append((c, img_s, steps))
        if steps >= BUDGET_STEPS:
            break
        spent = clock() - start
        if i + 1 < len(cands) and spent > PROBE_TOTAL_SHARE * budget_s:
            cut = (f"; {len(cands) - i - 1} more candidate(s) not probed: the probes took {spent:.0f} s, over "
                   f"{PROBE_TOTAL_SHARE:.0%} of the budget")
            break
    chosen, img_s, steps = next((s for s in seen if s[2] >= BUDGET_STEPS), max(seen, key=lambda s: s[2]))
    probed = "; ".join(f"{_short(c, cfg)} {v:,.0f} img/s" for c, v, _ in seen)
    why = (f"a {minutes:g}-minute budget at {img_s:,.0f} img/s (probe: {probed}) buys ~{steps:,.0f} G steps"
           + (f", at least the {BUDGET_STEPS:,}" if steps >= BUDGET_STEPS else
              f": no candidate reaches the {BUDGET_STEPS:,} steps") + " the preset was tuned with" + cut)
    notes = []
    for key, value in chosen.items():
        if value != _get(cfg, key):
            set_key(cfg, key, value, where="budget-aware preset")
            notes.append(f"{key}={value}")
    return [", ".join(notes) + f": {why}"] if notes else [f"the preset's own width and batch: {why}"]


def _get(cfg: Config, key: str):
    sec, name = key.split(".")
    return getattr(getattr(cfg, sec), name)


def _short(c: dict, cfg: Config) -> str:
    w = c.get("model.g_width", cfg.model.g_width)
    return f"width {w} batch {c.get('train.batch', cfg.train.batch)}"
