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


def check_settings(steps: int, lr: float, starts: int, prior_weight: float = 1e-3, encoder: bool = False) -> None:
    """The projection's settings, checked before any work. With an encoder E(x) is a start of its own, so
    `starts` (random ones) may be 0: that is encoder-initialised refinement."""
    if not (steps >= 0 and starts >= (0 if encoder else 1) and lr > 0 and prior_weight >= 0 and math.isfinite(lr)
            and math.isfinite(prior_weight)):
        least = 0 if encoder else 1
        raise GanforgeError(f"projection: need steps >= 0, starts >= {least}, lr > 0, prior_weight >= 0; got "
                            f"steps={steps}, starts={starts}, lr={lr}, prior_weight={prior_weight}")


def project(G: torch.nn.Module, x: torch.Tensor, z_dim: int, prior: str, *, steps: int = 300, lr: float = 0.05,
            starts: int = 16, prior_weight: float = 1e-3, seed: int = 0, batch: int = 256,
            device: torch.device | str = "cpu", encoder=None) -> tuple[torch.Tensor, ...]:
    """x: float [N, ...] in model range -> (z [N, z_dim], G(z) [N, ...], mse [N], start_mse [N]), on the CPU.

    encoder: a trained E (BiGAN): E(x) joins the random starts as one more candidate."""
    if len(x) == 0:
        raise GanforgeError("nothing to project: the input holds no items")
    check_settings(steps, lr, starts, prior_weight, encoder is not None)
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


@dataclass
class EncoderSettings:
    """How `train_encoder` fits an encoder to a trained, frozen generator (see its docstring)."""
    steps: int = 2000          # Adam steps
    batch: int = 64            # latents drawn per step, and as many real items
    lr: float = 1e-3           # Adam, betas (0.9, 0.99), linear decay to 0 over the last half
    latent_weight: float = 0.1  # E(G(z)) ~ z: mean squared error per latent coordinate
    fake_weight: float = 1.0   # G(E(G(z))) ~ G(z): per value, in model range
    real_weight: float = 1.0   # G(E(x)) ~ x on real items: per value, in model range (0 = generator pairs only)
    prior_weight: float = 1e-3  # the prior's penalty on E(x) of real items (as in `project`)

    def check(self) -> None:
        w = (self.latent_weight, self.fake_weight, self.real_weight, self.prior_weight)
        if not (self.steps >= 1 and self.batch >= 2 and self.lr > 0 and math.isfinite(self.lr)
                and all(v >= 0 and math.isfinite(v) for v in w) and (self.latent_weight + self.fake_weight
                                                                     + self.real_weight) > 0):
            raise GanforgeError(f"encoder training: need steps >= 1, batch >= 2, lr > 0 and weights >= 0 with one "
                                f"of latent/fake/real > 0; got {self}")


def train_encoder(G: torch.nn.Module, E: torch.nn.Module, real: torch.Tensor, z_dim: int, prior: str,
                  settings: EncoderSettings | None = None, *, seed: int = 0, device: torch.device | str = "cpu",
                  progress=None) -> list[dict]:
    """Fit E: x -> z to a trained generator G, which stays frozen (in eval mode, no gradient to its weights).

    Each step draws z from the prior and a minibatch of real items x [N, ...] (model range) and minimises
      latent_weight * |E(G(z)) - z|^2 / z_dim        latent regression on G's own pairs (E(G(z)) ~ z)
    + fake_weight   * |G(E(G(z))) - G(z)|^2 / d     the same pairs, judged where it shows: in data space
    + real_weight   * |G(E(x)) - x|^2 / d           reconstruction of real data through G ("in-domain":
                                                    E learns the codes G can decode, Zhu et al. 2020)
    + prior_weight  * R(E(x))                       the prior's penalty, as in projection
    The generator pairs are exact inverses to learn from; the real term makes E work on data G only
    approximates. Deterministic given the seed (E's initial weights are the caller's). Returns a short history
    of the mean losses [{step, latent, fake, real}]. `progress(step, steps)` is called every 50 steps."""
    st = settings or EncoderSettings()
    st.check()
    if len(real) < 2 and st.real_weight > 0:
        raise GanforgeError("encoder training needs at least 2 real items (or real_weight=0)")
    was_training, params = G.training, [p.requires_grad for p in G.parameters()]
    G.eval()
    G.requires_grad_(False)
    E.to(device).train()
    pr = PRIORS.get(prior)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(E.parameters(), lr=st.lr, betas=(0.9, 0.99))
    history, acc = [], {"latent": 0.0, "fake": 0.0, "real": 0.0, "n": 0}
    try:
        for step in range(st.steps):
            for group in opt.param_groups:  # constant, then linear decay to 0 over the second half
                group["lr"] = st.lr * min(1.0, 2.0 * (1 - step / st.steps))
            z = sample_prior(st.batch, z_dim, prior, gen).to(device)
            idx = torch.randint(len(real), (st.batch,), generator=gen)
            x = real[idx].to(device)
            with torch.no_grad():
                xf = G(z).float()
            both = E(torch.cat([xf, x.to(xf.dtype)])).float()   # one pass: batch norm sees fakes and reals
            ef, er = both[: st.batch], both[st.batch:]
            if pr.project is not None:
                ef, er = ef.clamp(-1, 1), er.clamp(-1, 1)      # uniform prior: codes inside the box
            latent = (ef - z).pow(2).mean()
            loss = st.latent_weight * latent
            fake_err = real_err = torch.zeros((), device=device)
            if st.fake_weight > 0 or st.real_weight > 0:
                rec = G(torch.cat([ef, er])).float()
                fake_err = _mse(rec[: st.batch], xf).mean()
                real_err = _mse(rec[st.batch:], x.float()).mean()
                loss = loss + st.fake_weight * fake_err + st.real_weight * real_err
            if st.prior_weight > 0 and pr.penalty is not None:
                loss = loss + st.prior_weight * pr.penalty(er).mean()
            if not torch.isfinite(loss):
                raise GanforgeError(f"encoder training diverged at step {step} (loss {loss.item()}); lower the "
                                    f"learning rate (now {st.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            acc["latent"] += latent.item()
            acc["fake"] += fake_err.item()
            acc["real"] += real_err.item()
            acc["n"] += 1
            if (step + 1) % 50 == 0 or step + 1 == st.steps:
                n = acc.pop("n")
                history.append({"step": step + 1, **{k: v / n for k, v in acc.items()}})
                acc = {"latent": 0.0, "fake": 0.0, "real": 0.0, "n": 0}
                if progress is not None:
                    progress(step + 1, st.steps)
    finally:
        for p, r in zip(G.parameters(), params):
            p.requires_grad_(r)
        G.train(was_training)
    E.eval()
    return history


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
