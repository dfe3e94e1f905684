"""The exported generator: written at every tick (`export_generator`), loaded and sampled without the dataset
or the training code path (`load(run_dir)` -> Generator -> `.sample(n, seed)`).

Format (RUN_DIR/generator/): model.safetensors (G_ema's state_dict: data, not code) and config.json:
  {"format": "ganforge-generator-1", "ganforge_version", "nimg", "data": {name, kind, shape, class_names},
   "model": the model section, "config": the whole config}
A config.json written by another ganforge version loads; keys this version does not know are reported in
one warning and ignored.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .components import model_from_artefact
from .config import ModelConfig, check_seed, to_dict
from .data.base import Data, from_model_range
from .errors import GanforgeError
from .inversion import Projection, as_model_input, project, to_projection
from .models import PRIORS, build_generator, check_truncation, sample_prior
from .utils.device import pick_device
from .utils.files import atomic_write, read_json, write_json, write_npz
from .utils.images import save_image_grid, to_hwc
from .utils.plots import save_scatter
from .version import __version__

FORMAT = "ganforge-generator-1"


def export_generator(run_dir: str | Path, G_ema: torch.nn.Module, cfg, data: Data, nimg: int) -> Path:
    """RUN_DIR/generator/model.safetensors + config.json: everything `load` needs, no training code."""
    from safetensors.torch import save

    out = Path(run_dir) / "generator"
    sd = {k: v.detach().to("cpu").contiguous() for k, v in G_ema.state_dict().items()}
    meta = {"ganforge_version": __version__, "format": FORMAT, "nimg": nimg,
            "data": {"name": data.name, "kind": data.kind, "shape": list(data.shape), "class_names": data.class_names},
            "model": to_dict(cfg)["model"], "config": to_dict(cfg)}
    atomic_write(out / "model.safetensors", save(sd))
    write_json(out / "config.json", meta)
    return out


def as_items(x: torch.Tensor, kind: str) -> np.ndarray:
    """Stored form (uint8 [N, C, H, W] or float [N, D]) -> what users get: uint8 [N, H, W, C] / float32 [N, D]."""
    return to_hwc(x).numpy() if kind == "image" else x.numpy().astype(np.float32)


@torch.no_grad()
def generate(G: torch.nn.Module, mcfg: ModelConfig, kind: str, n: int, seed: int = 0, device="cpu",
             truncation: float | None = None, batch: int = 256) -> torch.Tensor:
    """n samples in stored form (uint8 [n, C, H, W] or float32 [n, D]) on the CPU.

    Latents are drawn on the CPU from `seed` in one go, so the result does not depend on `batch` or device.
    """
    z = sample_prior(n, mcfg.z_dim, mcfg.prior, torch.Generator().manual_seed(seed), truncation=truncation)
    out = [from_model_range(G(z[i: i + batch].to(device)), kind).cpu() for i in range(0, n, batch)]
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class Generator:
    """A trained generator, loaded from RUN_DIR/generator (model.safetensors + config.json)."""

    net: torch.nn.Module
    model: ModelConfig
    kind: str                  # "image" | "vector"
    shape: tuple[int, ...]     # one item: (C, H, W) or (D,)
    meta: dict
    device: torch.device

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, batch: int = 256) -> np.ndarray:
        """n samples: images as uint8 [n, H, W, C], vectors as float32 [n, D]. Same seed, same samples.
        truncation: draw latents closer to the prior's centre (see ganforge.models.priors); None = off."""
        return as_items(self.sample_tensor(n, seed, truncation, batch), self.kind)

    def sample_tensor(self, n: int, seed: int = 0, truncation: float | None = None, batch: int = 256) -> torch.Tensor:
        """Like `sample` but in dataset layout: uint8 [n, C, H, W] or float32 [n, D]."""
        self.check_count(n)
        check_seed(seed, "seed")
        check_truncation(truncation, self.model.prior)
        return generate(self.net, self.model, self.kind, n, seed, self.device, truncation, batch)

    def check_count(self, n: int, what: str = "the number of samples") -> None:
        """n must be a whole number >= 0 whose samples fit in half of the memory available now."""
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise GanforgeError(f"{what} must be a whole number >= 0, got {n!r}")
        need = int(n) * math.prod(self.shape) * (1 if self.kind == "image" else 4) * 2  # output + the copy made
        free = _available_memory()
        if free and need > free // 2:
            raise GanforgeError(f"{what}: {n} samples of shape {list(self.shape)} need about {need / 2**30:.1f} GiB; "
                                f"{free / 2**30:.1f} GiB of memory are free; ask for fewer")

    def project(self, x, steps: int = 300, lr: float = 0.05, starts: int = 16, prior_weight: float = 1e-3,
                seed: int = 0, batch: int = 256) -> Projection:
        """Latents whose samples match `x` (images uint8 [N, H, W, C] as `sample` returns, or vectors [N, D]):
        a `ganforge.inversion.Projection` with z, reconstructions, mse and start_mse. Same seed, same result."""
        check_seed(seed, "seed")
        target = as_model_input(x, self.kind, self.shape)
        out = project(self.net, target, self.model.z_dim, self.model.prior, steps=steps, lr=lr, starts=starts,
                      prior_weight=prior_weight, seed=seed, batch=batch, device=self.device,
                      encoder=self.net.encode if self.has_encoder else None)
        return to_projection(*out, self.kind)

    @torch.no_grad()
    def decode(self, z, batch: int = 256) -> np.ndarray:
        """Samples of given latents z [N, z_dim] (e.g. from `encode` or `project`), in the layout of `sample`."""
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.model.z_dim:
            raise GanforgeError(f"latents have shape {tuple(z.shape)}; this generator takes [N, {self.model.z_dim}]")
        x = torch.cat([from_model_range(self.net(z[i: i + batch].to(self.device)), self.kind).cpu()
                       for i in range(0, len(z), batch)])
        return as_items(x, self.kind)

    @property
    def has_encoder(self) -> bool:
        """Trained with model.encoder (BiGAN / ALI): `encode` maps data to latents in one forward pass."""
        return hasattr(self.net, "encode")

    @torch.no_grad()
    def encode(self, x, batch: int = 256) -> np.ndarray:
        """Latents float32 [N, z_dim] of data `x` (as for `project`) from the trained encoder E."""
        if not self.has_encoder:
            raise GanforgeError("this generator has no encoder (it was trained with model.encoder=false); "
                                "use project() to find latents by optimisation")
        t = as_model_input(x, self.kind, self.shape)
        z = [self.net.encode(t[i: i + batch].to(self.device)).float().cpu() for i in range(0, len(t), batch)]
        return torch.cat(z).numpy()

    @torch.no_grad()
    def interpolate(self, steps: int = 8, seed: int = 0, seed_to: int = 1) -> np.ndarray:
        """Samples along the path between the latents of two seeds (slerp for a normal prior, lerp for uniform)."""
        z0 = sample_prior(1, self.model.z_dim, self.model.prior, torch.Generator().manual_seed(seed))
        z1 = sample_prior(1, self.model.z_dim, self.model.prior, torch.Generator().manual_seed(seed_to))
        z = PRIORS.get(self.model.prior).interpolate(z0, z1, torch.linspace(0, 1, steps)[:, None])
        x = from_model_range(self.net(z.to(self.device)), self.kind).cpu()
        return as_items(x, self.kind)


def _available_memory() -> int:
    """Bytes of memory available now (Linux, macOS); 0 when unknown."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0


def load(run_dir: str | Path, device: str = "cpu") -> Generator:
    """Load the exported generator of a run (RUN_DIR or RUN_DIR/generator)."""
    from safetensors.torch import load_file

    p = Path(run_dir)
    gdir = p if (p / "config.json").is_file() else p / "generator"
    if not p.exists():
        raise GanforgeError(f"run directory {str(p)!r} not found")
    if not (gdir / "config.json").is_file() or not (gdir / "model.safetensors").is_file():
        raise GanforgeError(f"{str(p)!r} has no exported generator (expected {gdir}/model.safetensors and "
                            "config.json); train it first, or resume it so that a tick exports one")
    meta = read_json(gdir / "config.json")
    where = str(gdir / "config.json")
    try:
        kind, shape = meta["data"]["kind"], tuple(int(v) for v in meta["data"]["shape"])
        mcfg = model_from_artefact(meta["model"], where)
    except (ValueError, KeyError, TypeError, GanforgeError) as e:
        raise GanforgeError(f"{where} is damaged or not a ganforge generator ({e})") from None
    if kind not in ("image", "vector"):
        raise GanforgeError(f"{where} is damaged or not a ganforge generator (data kind {kind!r})")
    net = build_generator(mcfg, shape, kind)
    try:
        sd = load_file(str(gdir / "model.safetensors"))
        net.load_state_dict(sd)
    except Exception as e:
        raise GanforgeError(f"{gdir / 'model.safetensors'} is damaged or does not match config.json "
                            f"({type(e).__name__})") from None
    dev = pick_device(device, "--device")
    return Generator(net=net.to(dev).eval(), model=mcfg, kind=kind, shape=shape, meta=meta, device=dev)


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Compressed .npz, written atomically: an interrupted write never leaves a half file under `path`."""
    return write_npz(path, **arrays)


def check_output(out: str | Path, overwrite: bool = False, option: str = "--out") -> Path:
    """An output path that writing will not turn into a loss: an existing file is replaced only with
    overwrite=True, a directory where a file is asked for is refused, the parent folder must exist or be
    creatable."""
    out = Path(out)
    if out.suffix and out.is_dir():
        raise GanforgeError(f"{option} {str(out)!r} is a directory; give a file name")
    if out.is_file() and not overwrite:
        raise GanforgeError(f"{option} {str(out)!r} exists; choose another name, or pass --overwrite to replace it")
    if out.parent.exists() and not out.parent.is_dir():
        raise GanforgeError(f"{option} {str(out)!r}: {str(out.parent)!r} is a file, not a folder")
    return out


def save_samples(x: np.ndarray, kind: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write samples as .npz (`images` uint8 [N,H,W,C] or `samples` float32 [N,D]), one .png grid, or a folder of
    PNGs. Nothing that exists is replaced unless overwrite=True."""
    from PIL import Image

    out = check_output(out, overwrite)
    if out.suffix == "" and out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GanforgeError(f"--out {str(out)!r} is a folder that is not empty; choose another, or pass --overwrite")
    if out.suffix == ".npz":
        save_npz(out, **{"images" if kind == "image" else "samples": x})
    elif out.suffix == ".png":
        if kind == "image":
            save_image_grid(x, out, scale=1)
        else:
            save_scatter(x, None, out)
    elif out.suffix == "":
        if kind != "image":
            raise GanforgeError(f"--out {str(out)!r}: a folder of PNGs needs image samples; use .npz for vectors")
        out.mkdir(parents=True, exist_ok=True)
        c = x.shape[-1]
        for i, img in enumerate(x):
            Image.fromarray(img[..., 0] if c == 1 else img).save(out / f"{i:06d}.png")
    else:
        raise GanforgeError(f"--out {str(out)!r}: use a .npz file, a .png grid, or a folder name")
    return out
