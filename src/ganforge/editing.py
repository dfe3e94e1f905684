"""What users do with the latents of real data: fit an encoder to a trained generator, then reconstruct,
interpolate between two real images and edit along class directions.

`fit_encoder(RUN)` trains E for the run's exported generator, which stays as it is (ganforge.inversion.
train_encoder: latent regression on G's own pairs plus reconstruction of the run's real images through G),
saves it beside the generator (ganforge.sampling.save_encoder) and draws three figures into RUN/encoder/ that
the HTML report shows: reconstructions of held-out images (E alone, then refined), interpolations between pairs
of real images, and class-direction edits when the data has labels. A generator trained with model.encoder
(BiGAN / ALI) has its own E; every function here works with either.

A class direction is the difference of the mean codes of two classes of real images (mu_b - mu_a, each mean
over up to 200 encoded training images of its class): adding t (mu_b - mu_a) to the code of an image of class a
moves its sample toward class b, and t = 1 moves the class mean onto the other's.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .components import from_artefact
from .data import Data, build_dataset, to_model_range
from .errors import GanforgeError
from .evaluation import heldout_data
from .inversion import EncoderSettings, train_encoder
from .models import PRIORS, build_encoder
from .sampling import Generator, load, save_encoder
from .utils.images import save_image_grid, to_hwc

MAX_ITEMS = 20000      # real items E is fitted on (a seeded subset of larger datasets)
REFINE = 50            # Adam steps of the refined encoding in the figures (and `ganforge encode --refine`'s advice)
PER_CLASS = 200        # encoded training images per class for a class direction


def run_data(g: Generator, where: str = "") -> tuple[Data, object]:
    """The run's training data (from the config saved with its generator) and that config."""
    cfg = from_artefact(g.meta["config"], where or "generator/config.json")
    return build_dataset(cfg.data), cfg


def _plain_generator(g: Generator) -> torch.nn.Module:
    return g.net.G if hasattr(g.net, "G") else g.net   # a BiGAN's G without its E


def fit_encoder(run_dir: str | Path, settings: EncoderSettings | None = None, *, seed: int = 0,
                device: str = "cpu", max_items: int = MAX_ITEMS, figures: bool = True, progress=None) -> dict:
    """Fit an encoder to the run's exported generator -> info (also in generator/encoder.json): settings, items,
    time, the reconstruction error of E alone and refined on held-out images (training images when the dataset
    has no held-out split), and the figures written."""
    st = settings or EncoderSettings()
    st.check()
    g = load(run_dir, device=device)
    if g.conditional:
        raise GanforgeError("an encoder for a class-conditional generator is not supported: its latents would need "
                            "a class each")
    build_encoder(g.model, g.shape)   # the family has one (a clear error otherwise), before the data is read
    data, cfg = run_data(g, f"{run_dir}/generator/config.json")
    if tuple(data.shape) != tuple(g.shape):
        raise GanforgeError(f"the run's data now has items of shape {list(data.shape)}, its generator makes "
                            f"{list(g.shape)}; the data changed since training")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=gen)[:max_items].sort().values
    real = to_model_range(data.x[idx], data.kind)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        E = build_encoder(g.model, g.shape)
    t0 = time.perf_counter()
    history = train_encoder(_plain_generator(g), E, real, g.model.z_dim, g.model.prior, st, seed=seed,
                            device=g.device, progress=progress)
    seconds = time.perf_counter() - t0
    held = heldout_data(cfg, data) if data.kind == "image" else None
    test = held if held is not None else data
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed + 1))[:500].sort().values
    x = test.x[pick]
    E = E.to(g.device).eval()
    g.encoder, g.encoder_note = E, ""
    info = {"method": "latent regression on G's pairs + reconstruction of real items through G",
            "settings": vars(st), "seed": seed, "items": len(idx), "dataset": data.name, "seconds": round(seconds, 2),
            "history": history[-1:], "evaluated_on": f"{len(x)} {'held-out' if held is not None else 'training'} "
                                                    f"items of {data.name}"}
    items = _as_items(x, data.kind)
    for name, refine in (("mse_encoder", 0), (f"mse_refined_{REFINE}", REFINE)):
        z = g.encode(items, refine=refine)
        rec = torch.as_tensor(g.decode(z))
        info[name] = float(_model_mse(rec, items, data.kind))
    if figures:
        save_encoder(run_dir, E, info)   # first: a failure while drawing must not lose the fitted encoder
        info["figures"] = [str(p) for p in draw_figures(g, data, held, Path(run_dir) / "encoder", seed)]
    save_encoder(run_dir, E, info)
    return info


def _as_items(x: torch.Tensor, kind: str) -> np.ndarray:
    return to_hwc(x).numpy() if kind == "image" else x.numpy()


def _model_mse(rec, items, kind: str) -> float:
    a = torch.as_tensor(np.asarray(rec)).float()
    b = torch.as_tensor(np.asarray(items)).float()
    if kind == "image":
        a, b = a / 127.5, b / 127.5
    return (a - b).pow(2).mean().item()


def class_directions(g: Generator, data: Data, per_class: int = PER_CLASS, seed: int = 0) -> torch.Tensor:
    """The mean code of each class [K, z_dim]: E(x) averaged over up to `per_class` training items of the class."""
    if data.labels is None:
        raise GanforgeError(f"class directions need a labelled dataset; {data.name} has no labels")
    k = int(data.labels.max()) + 1
    gen = torch.Generator().manual_seed(seed)
    means = torch.zeros(k, g.model.z_dim)
    for c in range(k):
        where = (data.labels == c).nonzero().flatten()
        if len(where) == 0:
            continue
        pick = where[torch.randperm(len(where), generator=gen)[:per_class]]
        means[c] = torch.as_tensor(g.encode(_as_items(data.x[pick], data.kind))).mean(0)
    return means


def interpolate(g: Generator, a, b, steps: int = 8, refine: int = REFINE) -> np.ndarray:
    """Samples along the path between the codes of real items a and b (each [N, ...] as for `encode`, paired
    row by row): [N, steps + 2, ...] = a, G(z_t) for t in 0..1 (the prior's interpolation: slerp for a
    normal prior), b."""
    if steps < 2:
        raise GanforgeError(f"--steps: at least 2 points along the path, got {steps}")
    za = torch.as_tensor(g.encode(a, refine=refine))
    zb = torch.as_tensor(g.encode(b, refine=refine))
    if len(za) != len(zb):
        raise GanforgeError(f"interpolation pairs items row by row; got {len(za)} and {len(zb)} items")
    t = torch.linspace(0, 1, steps)[:, None]
    interp = PRIORS.get(g.model.prior).interpolate
    rows = []
    for i in range(len(za)):
        path = g.decode(interp(za[i: i + 1], zb[i: i + 1], t).numpy())
        rows.append(np.concatenate([np.asarray(a[i: i + 1]), path, np.asarray(b[i: i + 1])]))
    return np.stack(rows)


def edit(g: Generator, x, direction: torch.Tensor, strengths, refine: int = REFINE) -> np.ndarray:
    """Samples of E(x) + t * direction for each t in `strengths`: [N, 1 + len(strengths), ...], the input first."""
    z = torch.as_tensor(g.encode(x, refine=refine))
    d = torch.as_tensor(direction, dtype=torch.float32).reshape(1, -1)
    if d.shape[1] != z.shape[1]:
        raise GanforgeError(f"the direction has {d.shape[1]} values; this generator's latents have {z.shape[1]}")
    out = [np.asarray(x)[:, None]]
    for t in strengths:
        out.append(g.decode((z + float(t) * d).numpy())[:, None])
    return np.concatenate(out, 1)


def _examples(data: Data, n: int, seed: int) -> torch.Tensor:
    """n items, one per class in turn when labelled (so a figure shows every class), else a seeded draw."""
    gen = torch.Generator().manual_seed(seed)
    if data.labels is None:
        return torch.randperm(len(data), generator=gen)[:n]
    k = int(data.labels.max()) + 1
    per = [(data.labels == c).nonzero().flatten() for c in range(k)]
    per = [p[torch.randperm(len(p), generator=gen)] for p in per if len(p)]
    out = [p[i] for i in range(max(len(p) for p in per)) for p in per if i < len(p)]
    return torch.stack(out[:n])


def draw_figures(g: Generator, data: Data, held: Data | None, out_dir: Path, seed: int = 0) -> list[Path]:
    """RUN/encoder/reconstructions.png, interpolation.png and, for labelled data, edits.png (see the module
    docstring); vectors get none (their reconstruction errors are in encoder.json)."""
    if data.kind != "image":
        return []
    test = held if held is not None else data
    paths = []
    ex = _examples(test, 10, seed)
    x = _as_items(test.x[ex], "image")
    rec_e = g.decode(g.encode(x))
    rec_r = g.decode(g.encode(x, refine=REFINE))
    paths.append(save_image_grid(np.concatenate([x, rec_e, rec_r]), out_dir / "reconstructions.png",
                                 cols=len(x)))
    ex2 = _examples(test, 8, seed + 1)
    pairs = interpolate(g, x[:4], _as_items(test.x[ex2[4:8]], "image"), steps=8)
    paths.append(save_image_grid(pairs.reshape(-1, *pairs.shape[2:]), out_dir / "interpolation.png",
                                 cols=pairs.shape[1]))
    if test.labels is not None and data.labels is not None:
        means = class_directions(g, data, seed=seed)
        k = len(means)
        rows = []
        for i in range(min(len(x), 8)):
            a = int(test.labels[ex[i]])
            b = (a + 1) % k
            rows.append(edit(g, x[i: i + 1], means[b] - means[a], np.linspace(0, 1.25, 6), refine=REFINE)[0])
        rows = np.stack(rows)
        paths.append(save_image_grid(rows.reshape(-1, *rows.shape[2:]), out_dir / "edits.png", cols=rows.shape[1]))
    return paths
