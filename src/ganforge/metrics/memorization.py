"""Memorisation: are the generated samples copies of training items?

A generator that reproduces its training images scores well on every distance metric (a copy of the training set
has FD ~0), so the question needs its own test. Each generated sample's distance to its nearest training item is
compared with the same distance for real images the generator never trained on (a held-out split: the data's
test split): a generator that generalises is no closer to its training set than unseen data are.

- `ct`: the C_T statistic of Meehan, Chaudhuri & Dasgupta 2020 ("A non-parametric test to detect data-copying in
  generative models"). The training set's features are cut into `CELLS` k-means cells; in each cell a
  Mann-Whitney U test compares the generated samples' nearest-training distances with the held-out items'; the
  cells' z-scores are combined with the held-out items' share of each cell as weights (cells with fewer than
  `MIN_CELL` generated samples are left out, as the paper's tau). About N(0, 1) when the generator samples like
  the data; strongly negative when it copies (its samples sit closer to training items than new data do);
  positive when it underfits. Flagged below `CT_FLAG`. Fewer cells when there are few samples (each cell should
  hold 2 x MIN_CELL on average); not computed below MIN_CELL samples.
- `copy_share`: the share of generated samples closer to a training item than ANY held-out item is (smaller than
  the smallest held-out distance); ~1/(n_heldout + 1) for new samples from the data. Flagged above
  `COPY_FLAG`.
- `authenticity` (Alaa et al. 2022, "How faithful is your synthetic data?"): the share of generated samples
  farther from their nearest training item x than x is from its own nearest training neighbour; needs no held-out
  data, and is compared with the same share for the held-out items (`authenticity_heldout`, about 0.5), since
  alone it has no fixed scale.
Both spaces are measured: the self-supervised features (what the image shows) and pixels (exact copies), images
downsampled to at most `PIXELS` x `PIXELS` (area). The closest generated / training pairs of each space are in
the protocol (`closest_pairs`: [fake index, index into the real data, distance]) and `ganforge eval` draws them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GanforgeError
from .c2st import midranks
from .evaluate import METRICS, Inputs, MetricSpec

CELLS = 20
MIN_CELL = 20
CT_FLAG = -3.0
COPY_FLAG = 0.01
PIXELS = 32
PAIRS = 16
_BLOCK = 1 << 24   # distance-matrix entries per block


def nearest(a: torch.Tensor, b: torch.Tensor, exclude: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of a [N, D]: (distance [N] float64, index [N]) of its nearest row of b [M, D] (euclidean).
    exclude: [N] indices into b, one per row of a, that do not count (a row's own copy in b)."""
    a, b = a.float(), b.float()
    bb = (b * b).sum(1)
    dist, idx = torch.empty(len(a), dtype=torch.float64), torch.empty(len(a), dtype=torch.long)
    rows = max(1, _BLOCK // max(1, len(b)))
    for s in range(0, len(a), rows):
        blk = a[s:s + rows]
        d2 = (blk * blk).sum(1, keepdim=True) - 2 * blk @ b.T + bb          # [r, M]
        if exclude is not None:
            d2[torch.arange(len(blk)), exclude[s:s + rows]] = float("inf")
        m = d2.min(1)
        dist[s:s + rows], idx[s:s + rows] = m.values.clamp_min(0).double().sqrt(), m.indices
    return dist, idx


def kmeans(x: torch.Tensor, k: int, seed: int, iters: int = 25) -> torch.Tensor:
    """Lloyd's k-means on x [N, D] (k-means++ start from `seed`) -> centroids [k, D]."""
    g = torch.Generator().manual_seed(seed)
    x = x.float()
    cent = x[torch.randint(len(x), (1,), generator=g)]
    for _ in range(1, k):
        d = nearest(x, cent)[0] ** 2
        cent = torch.cat([cent, x[torch.multinomial((d / d.sum()).float(), 1, generator=g)]])
    for _ in range(iters):
        assign = nearest(x, cent)[1]
        for c in range(k):
            m = assign == c
            if m.any():
                cent[c] = x[m].mean(0)
    return cent


def mann_whitney_z(gen: np.ndarray, test: np.ndarray) -> float:
    """z-score of U = #{(q, p): d_gen(q) > d_test(p)} (ties count half) under H0 (same distribution)."""
    m, n = len(gen), len(test)
    ranks = midranks(np.concatenate([gen, test]))
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float((u - m * n / 2) / math.sqrt(m * n * (m + n + 1) / 12))


def ct_statistic(d_gen: np.ndarray, d_test: np.ndarray, cell_gen: np.ndarray, cell_test: np.ndarray, k: int,
                 min_cell: int = MIN_CELL) -> tuple[float, int]:
    """Meehan et al.'s C_T from nearest-training distances and cell ids -> (C_T, cells used)."""
    w, z = [], []
    for c in range(k):
        g, t = d_gen[cell_gen == c], d_test[cell_test == c]
        if len(g) >= min_cell and len(t) >= 2:
            w.append(len(t) / len(d_test))
            z.append(mann_whitney_z(g, t))
    if not w:
        return float("nan"), 0
    w_, z_ = np.array(w), np.array(z)
    return float((w_ * z_).sum() / math.sqrt((w_ ** 2).sum())), len(w)


def memorization_stats(train: torch.Tensor, fake: torch.Tensor, heldout: torch.Tensor | None, seed: int = 0,
                       cells: int = CELLS) -> tuple[dict[str, float], list[list[float]], dict]:
    """Memorisation statistics of one space: train [N, D], fake [M, D], heldout [H, D] or None ->
    (values, the closest [fake index, train index, distance] pairs, extra protocol)."""
    if len(train) < 2:
        raise GanforgeError(f"memorization needs at least 2 training items, got {len(train)}")
    d_gen, nn_gen = nearest(fake, train)
    # authenticity: only the training items that are someone's nearest neighbour need their own NN distance
    used = torch.unique(nn_gen)
    own = torch.zeros(len(train), dtype=torch.float64)
    own[used] = nearest(train[used], train, exclude=used)[0]
    values = dict(authenticity=float((d_gen > own[nn_gen]).double().mean()))
    extra: dict = {}
    if heldout is not None and len(heldout):
        d_test, nn_test = nearest(heldout, train)
        used_t = torch.unique(nn_test)
        own[used_t] = nearest(train[used_t], train, exclude=used_t)[0]
        values["authenticity_heldout"] = float((d_test > own[nn_test]).double().mean())
        values["copy_share"] = float((d_gen < d_test.min()).double().mean())
        # as many cells as leave room for MIN_CELL generated samples in each (on average, twice that)
        k = max(1, min(cells, len(train) // 10, len(fake) // (2 * MIN_CELL)))
        cent = kmeans(train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:20_000]],
                      k, seed)
        ct, used_cells = ct_statistic(d_gen.numpy(), d_test.numpy(), nearest(fake, cent)[1].numpy(),
                                      nearest(heldout, cent)[1].numpy(), k)
        if math.isfinite(ct):
            values["ct"] = ct
        extra = dict(cells=k, cells_used=used_cells, n_heldout=len(heldout),
                     **({} if math.isfinite(ct) else {"ct": f"not computed: fewer than {MIN_CELL} samples"}))
    order = torch.argsort(d_gen)[:PAIRS]
    pairs = [[int(i), int(nn_gen[i]), round(float(d_gen[i]), 6)] for i in order]
    return values, pairs, extra


def pixels(x: torch.Tensor) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> float [N, C * h * w] in [0, 1], h, w <= PIXELS (area downsampling)."""
    y = x.float() / 255
    h, w = x.shape[2:]
    if max(h, w) > PIXELS:
        s = PIXELS / max(h, w)
        y = F.interpolate(y, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
    return y.flatten(1)


def _memorization(inp: Inputs) -> tuple[dict[str, float], dict]:
    main = inp.space.main
    spaces = {inp.space.name: (inp.real.features[main], inp.fake[main],
                               inp.space.extract(inp.heldout.x)[main] if inp.heldout is not None else None)}
    if inp.data.kind == "image":
        spaces["pixels"] = (pixels(inp.real_x), pixels(inp.fake_x),
                            pixels(inp.heldout.x) if inp.heldout is not None else None)
    values: dict[str, float] = {}
    pairs, extra = {}, {}
    for i, (name, (tr, fk, ho)) in enumerate(spaces.items()):
        v, pairs[name], extra[name] = memorization_stats(tr, fk, ho, inp.seed)
        if inp.real_index is not None:  # indices into the whole real set, not the subset
            pairs[name] = [[f, int(inp.real_index[t]), d] for f, t, d in pairs[name]]
        values.update({k if i == 0 else f"{k}_{name}": x for k, x in v.items()})
    if inp.heldout is not None:
        flagged = any(values.get(k, 0) > COPY_FLAG for k in values if k.startswith("copy_share")) or \
            any(values[k] < CT_FLAG for k in values if k.startswith("ct") and math.isfinite(values[k]))
        values["copying"] = float(flagged)
    protocol = dict(
        training_items=f"the {len(inp.real_x)} real items used (the run's training data)",
        heldout=(f"{len(inp.heldout)} held-out items ({inp.heldout.name}, split "
                 f"{inp.heldout.info.get('split')})" if inp.heldout is not None else
                 "none: this dataset has no held-out split, so ct and copy_share are not computed"),
        spaces=list(spaces), pixels=f"[0, 1], area-downsampled to at most {PIXELS}x{PIXELS}",
        ct=f"Meehan et al. 2020 C_T, {CELLS} k-means cells of the training features, cells with >= {MIN_CELL} "
           "generated samples", copy_share="share of samples closer to a training item than any held-out item",
        authenticity="Alaa et al. 2022: share farther from their nearest training item than it is from its own",
        flag=f"copying = 1 when ct < {CT_FLAG} or copy_share > {COPY_FLAG} in any space", details=extra,
        closest_pairs=pairs)
    return values, protocol


METRICS.register("memorization")(MetricSpec(
    "memorization", "are samples copies of training items? ct (Meehan et al. C_T), copy_share, authenticity; each "
    "in self-supervised features and in pixels (_pixels), copying (0/1)",
    {"image": "selfsup", "vector": "raw"}, _memorization))
