"""Inversion: find latents z with G(z) close to given data (optimisation-based projection).

For each item x the projection solves  min_z  ||G(z) - x||^2 / d  +  lambda * R(z)  with Adam, in the model
range ([-1, 1] for images), where d is the number of values per item and R is the prior's negative
log-density up to constants: ||z||^2 / (2 z_dim) for a normal prior (it keeps z where the generator was
trained), none for a uniform prior, whose box [-1, 1] is kept by clamping after every step.
GAN objectives are not convex in z, so the start matters: each item starts from the best of `starts`
latents drawn from the prior, and of E(x) when the generator was trained with an encoder (Lipton & Tripathi
2017 and Creswell & Bharath 2016 discuss the landscape).
The generator runs in eval mode (batch norm uses its running statistics), so items are projected
independently: the result for an item does not depend on the others in the batch or on `batch`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .data.base import from_model_range, to_model_range
from .errors import GanforgeError
from .models.priors import PRIORS, sample_prior
from .utils.files import read_array
from .utils.images import IMAGE_EXTS, convert_channels, list_images, read_image, to_chw, to_hwc


@dataclass
class Projection:
    z: np.ndarray                 # float32 [N, z_dim]: the latents found
    reconstructions: np.ndarray   # G(z), like Generator.sample: uint8 [N, H, W, C] or float32 [N, D]
    mse: np.ndarray               # float32 [N]: mean squared error of G(z) to the item, in model range
    start_mse: np.ndarray         # float32 [N]: the same for the best starting latent, before optimisation


def as_model_input(x, kind: str, shape: tuple[int, ...]) -> torch.Tensor:
    """User data -> float [N, *shape] in model range. Images: uint8 [N, H, W, C] (as `sample` returns) or
    [N, C, H, W]; vectors: [N, D]."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise GanforgeError(f"data to project must be numbers, got {a.dtype} values")
    t = torch.as_tensor(a)
    if t.ndim == 0 or len(t) == 0:
        raise GanforgeError("nothing to project: the input holds no items")
    if kind == "image":
        c, h, w = shape
        if t.ndim == 3 and c == 1:
            t = t[..., None]  # [N, H, W] grey
        if t.ndim == 4 and tuple(t.shape[1:]) == (h, w, c) and tuple(t.shape[1:]) != (c, h, w):
            t = to_chw(t)
        if t.ndim != 4 or tuple(t.shape[1:]) != (c, h, w):
            raise GanforgeError(f"images to project have shape {tuple(t.shape)}; this generator makes "
                                f"[N, {h}, {w}, {c}] (or [N, {c}, {h}, {w}]) uint8 images; resize them first "
                                f"(`ganforge project` resizes image files for you)")
        if t.dtype != torch.uint8:
            raise GanforgeError(f"images to project must be uint8 (0..255), got {t.dtype}")
        return to_model_range(t.contiguous(), kind)
    if t.ndim != 2 or t.shape[1] != shape[0]:
        raise GanforgeError(f"vectors to project have shape {tuple(t.shape)}; this generator makes [N, {shape[0]}]")
    out = t.float()
    if not torch.isfinite(out).all():
        raise GanforgeError("vectors to project contain NaN or infinite values")
    return out


def check_settings(steps: int, lr: float, starts: int, prior_weight: float = 1e-3) -> None:
    """The projection's settings, checked before any work."""
    if not (steps >= 0 and starts >= 1 and lr > 0 and prior_weight >= 0 and math.isfinite(lr)
            and math.isfinite(prior_weight)):
        raise GanforgeError(f"projection: need steps >= 0, starts >= 1, lr > 0, prior_weight >= 0; got steps={steps}, "
                            f"starts={starts}, lr={lr}, prior_weight={prior_weight}")


def project(G: torch.nn.Module, x: torch.Tensor, z_dim: int, prior: str, *, steps: int = 300, lr: float = 0.05,
            starts: int = 16, prior_weight: float = 1e-3, seed: int = 0, batch: int = 256,
            device: torch.device | str = "cpu", encoder=None) -> tuple[torch.Tensor, ...]:
    """x: float [N, ...] in model range -> (z [N, z_dim], G(z) [N, ...], mse [N], start_mse [N]), on the CPU.

    encoder: a trained E (BiGAN): E(x) joins the random starts as one more candidate."""
    if len(x) == 0:
        raise GanforgeError("nothing to project: the input holds no items")
    check_settings(steps, lr, starts, prior_weight)
    was_training, params = G.training, [p.requires_grad for p in G.parameters()]
    G.eval()
    G.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    # all starting latents drawn at once on the CPU: the result does not depend on `batch` or the device
    z0 = sample_prior(len(x) * starts, z_dim, prior, gen).view(len(x), starts, z_dim)
    outs = []
    try:
        for i in range(0, len(x), batch):
            xb, zb = x[i: i + batch].to(device), z0[i: i + batch].to(device)
            if encoder is not None:
                with torch.no_grad():
                    e = encoder(xb).float()
                    if PRIORS.get(prior).project is not None:  # a start inside the prior's support
                        PRIORS.get(prior).project(e)
                    zb = torch.cat([zb, e[:, None]], 1)
            outs.append(_project_batch(G, xb, zb, prior, steps, lr, prior_weight))
    finally:
        for p, r in zip(G.parameters(), params):
            p.requires_grad_(r)
        G.train(was_training)
    z, rec, mse, start = (torch.cat(t) for t in zip(*outs))
    return z, rec, mse, start


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).flatten(1).pow(2).mean(1)


def _project_batch(G, x, z0, prior, steps, lr, prior_weight):
    n, k, d = z0.shape
    with torch.no_grad():  # best of k starts per item
        err = torch.stack([_mse(G(z0[:, j]).float(), x) for j in range(k)], 1)  # [n, k]
        z = z0[torch.arange(n), err.argmin(1)].clone()
        start = err.min(1).values
    # Adam does not descend monotonically: keep each item's best iterate by its data fit (the prior term only
    # steers the path), so the result is never worse than the start
    best_z, best_mse = z.clone(), torch.full((n,), float("inf"), device=z.device)
    z.requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        mse = _mse(G(z).float(), x)
        with torch.no_grad():
            better = mse < best_mse
            best_mse = torch.where(better, mse, best_mse)
            best_z[better] = z[better]
        p = PRIORS.get(prior)
        obj = mse + prior_weight * p.penalty(z) if p.penalty is not None and prior_weight > 0 else mse
        if step == steps:
            break
        obj.sum().backward()  # a sum: each item's latent sees its own loss only
        opt.step()
        if p.project is not None:
            with torch.no_grad():
                p.project(z)
    with torch.no_grad():
        rec = G(best_z).float()
        return best_z.cpu(), rec.cpu(), _mse(rec, x).cpu(), start.cpu()


def to_projection(z, rec, mse, start, kind: str) -> Projection:
    r = from_model_range(rec, kind)
    r = to_hwc(r).numpy() if kind == "image" else r.numpy().astype(np.float32)
    return Projection(z=z.numpy().astype(np.float32), reconstructions=r, mse=mse.numpy().astype(np.float32),
                      start_mse=start.numpy().astype(np.float32))


def read_items(path, kind: str, shape: tuple[int, ...]) -> np.ndarray:
    """Data to project from a file: .npz (`images` / `samples`, as `ganforge sample` writes, or its only
    array), .npy, one image file, or a folder of images (recursively, sorted). Image files are scaled to cover
    the generator's H x W (Lanczos), centre-cropped and converted to its channel count, as the folder dataset
    does. Returns uint8 [N, H, W, C] images or float32 [N, D] vectors."""
    p = Path(path).expanduser()
    if not p.exists():
        raise GanforgeError(f"{str(p)!r} not found; give a .npz/.npy file, an image file or a folder of images")
    if p.suffix in (".npz", ".npy"):
        return read_array(p, ("images", "samples"))[1]
    if kind != "image":
        raise GanforgeError(f"{p}: this generator makes vectors; give them as a .npy or .npz file")
    if p.is_dir():
        files = [p / r for r, _, _ in list_images(p)]
    elif p.suffix.lower() in IMAGE_EXTS:
        files = [p]
    else:
        raise GanforgeError(f"{p}: unknown file type; give .npz, .npy, "
                            f"{', '.join(IMAGE_EXTS)} or a folder of images")
    if not files:
        raise GanforgeError(f"{p}: no images found (looked for {', '.join(IMAGE_EXTS)})")
    c, h, w = shape
    out = np.empty((len(files), h, w, c), np.uint8)
    for i, f in enumerate(files):
        try:
            a, _ = read_image(f, (h, w), "center", 0, i)
        except Exception as e:  # noqa: BLE001  any decoder failure: corrupt or unsupported file
            raise GanforgeError(f"{f}: cannot read this image ({type(e).__name__}: {e})") from None
        out[i] = convert_channels(a, c)
    return out
