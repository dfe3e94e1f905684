"""The exported generator: written at every tick (`export_generator`), loaded and sampled without the dataset
or the training code path (`load(run_dir)` -> Generator -> `.sample(n, seed)`).

Format (RUN_DIR/generator/): model.safetensors (G_ema's state_dict: data, not code) and config.json:
  {"format": "ganforge-generator-1", "ganforge_version", "nimg",
   "data": {name, kind, shape, class_names, n_classes, class_freq, tokenizer (text: its JSON spec)},
   "model": the model section,
   "config": the whole config}
A class-conditional generator (model.conditional) samples given class labels, by default drawn from the
training data's class frequencies (`class_freq`).
A config.json written by another ganforge version loads; keys this version does not know are reported in
one warning and ignored.
An encoder fitted afterwards (`ganforge encoder RUN`, ganforge.editing.fit_encoder) lives beside it:
encoder.safetensors and encoder.json {"format": "ganforge-encoder-1", "generator_sha256": the digest of the
model.safetensors it was fitted to, "settings", "history", ...}. It is loaded only while that digest matches: a
generator exported again by more training needs its encoder fitted again.
"""
from __future__ import annotations

import contextlib
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .components import model_from_artefact
from .config import ModelConfig, check_seed, to_dict
from .data.base import Data, class_frequencies, from_model_range, n_classes_of
from .data.tokenize import Tokenizer, tokenizer_from_dict
from .errors import GanforgeError
from .inversion import Projection, as_model_input, project, to_projection
from .metrics.text import set_run_loader
from .models import PRIORS, build_encoder, build_generator, check_truncation, sample_prior
from .utils.device import pick_device
from .utils.files import atomic_write, read_json, write_json, write_npz
from .utils.images import save_image_grid, to_hwc
from .utils.plots import save_scatter
from .version import __version__

FORMAT = "ganforge-generator-1"
NOISE_SEED_OFFSET = 7919   # a text G's Gumbel noise: seeded from the sample seed + this
ENCODER_FORMAT = "ganforge-encoder-1"


def export_generator(run_dir: str | Path, G_ema: torch.nn.Module, cfg, data: Data, nimg: int) -> Path:
    """RUN_DIR/generator/model.safetensors + config.json: everything `load` needs, no training code."""
    from safetensors.torch import save

    out = Path(run_dir) / "generator"
    sd = {k: v.detach().to("cpu").contiguous() for k, v in G_ema.state_dict().items()}
    freq = class_frequencies(data)
    meta = {"ganforge_version": __version__, "format": FORMAT, "nimg": nimg,
            "data": {"name": data.name, "kind": data.kind, "shape": list(data.shape), "class_names": data.class_names,
                     "n_classes": n_classes_of(data), "class_freq": None if freq is None else freq.tolist(),
                     **({"tokenizer": data.info["tokenizer"]} if data.kind == "text" else {})},
            "model": to_dict(cfg)["model"], "config": to_dict(cfg)}
    atomic_write(out / "model.safetensors", save(sd))
    write_json(out / "config.json", meta)
    return out


def as_items(x: torch.Tensor, kind: str) -> np.ndarray:
    """Stored form (uint8 [N, C, H, W], float [N, D] or token ids [N, L]) -> what users get: uint8 [N, H, W, C] /
    float32 [N, D] / int64 [N, L]."""
    if kind == "text":
        return x.numpy().astype(np.int64)
    return to_hwc(x).numpy() if kind == "image" else x.numpy().astype(np.float32)


@contextlib.contextmanager
def noise_seeded(G: torch.nn.Module, seed: int, device):
    """A generator that draws noise of its own (Gumbel-softmax text G: `G.rng`) draws it from `seed` meanwhile:
    the same seed gives the same samples."""
    if not hasattr(G, "rng"):
        yield
        return
    saved = G.rng
    G.rng = torch.Generator(torch.device(device)).manual_seed(seed)
    try:
        yield
    finally:
        G.rng = saved


@torch.no_grad()
def generate(G: torch.nn.Module, mcfg: ModelConfig, kind: str, n: int, seed: int = 0, device="cpu",
             truncation: float | None = None, batch: int = 256, labels: torch.Tensor | None = None) -> torch.Tensor:
    """n samples in stored form (uint8 [n, C, H, W], float32 [n, D] or token ids int64 [n, L]) on the CPU; labels
    int64 [n] for a conditional G (model.conditional).

    Latents are drawn on the CPU from `seed` in one go, so the result does not depend on `batch` or device. A text
    G's Gumbel noise is drawn batch by batch on the device from `seed` (noise_seeded): its samples are the same for
    the same seed, batch and device.
    """
    z = sample_prior(n, mcfg.z_dim, mcfg.prior, torch.Generator().manual_seed(seed), truncation=truncation)
    out = []
    with noise_seeded(G, seed + NOISE_SEED_OFFSET, device):  # text: the Gumbel noise (depends on `batch` too)
        for i in range(0, n, batch):
            zb = z[i: i + batch].to(device)
            x = G(zb) if labels is None else G(zb, labels[i: i + batch].to(device))
            out.append(from_model_range(x, kind).cpu())
    return torch.cat(out) if out else torch.empty(0)


def draw_labels(n: int, class_freq: torch.Tensor, seed: int) -> torch.Tensor:
    """n class labels from the training data's class frequencies, reproducibly from `seed`."""
    return torch.multinomial(class_freq, n, replacement=True, generator=torch.Generator().manual_seed(seed + 1))


@dataclass
class Generator:
    """A trained generator, loaded from RUN_DIR/generator (model.safetensors + config.json)."""

    net: torch.nn.Module
    model: ModelConfig
    kind: str                  # "image" | "vector" | "text"
    shape: tuple[int, ...]     # one item: (C, H, W), (D,) or (L,)
    meta: dict
    device: torch.device
    n_classes: int = 0         # > 0: class-conditional (model.conditional)
    class_freq: torch.Tensor | None = None  # the training data's class frequencies [n_classes]
    encoder: torch.nn.Module | None = None  # an encoder fitted afterwards (encoder.safetensors), if any
    encoder_note: str = ""   # why an encoder file beside the generator was not loaded
    tokenizer: Tokenizer | None = None  # text: the training data's tokeniser (saved in config.json)

    @property
    def conditional(self) -> bool:
        return self.n_classes > 0

    def sample(self, n: int, seed: int = 0, truncation: float | None = None, batch: int = 256,
               labels=None) -> np.ndarray | list[str]:
        """n samples: images as uint8 [n, H, W, C], vectors as float32 [n, D], text as n decoded strings (each row
        read up to its first EOS; `sample_tensor` gives the token ids). Same seed, same samples (for text also the
        same `batch`: the Gumbel noise is drawn batch by batch).
        truncation: draw latents closer to the prior's centre (see ganforge.models.priors); None = off.
        labels (a conditional generator): one class for all, or one per sample; None = drawn from the training
        data's class frequencies."""
        x = self.sample_tensor(n, seed, truncation, batch, labels)
        return self.tokenizer.decode(x) if self.kind == "text" else as_items(x, self.kind)

    def sample_tensor(self, n: int, seed: int = 0, truncation: float | None = None, batch: int = 256,
                      labels=None) -> torch.Tensor:
        """Like `sample` but in dataset layout: uint8 [n, C, H, W], float32 [n, D] or int64 token ids [n, L]."""
        self.check_count(n)
        check_seed(seed, "seed")
        check_truncation(truncation, self.model.prior)
        return generate(self.net, self.model, self.kind, n, seed, self.device, truncation, batch,
                        self.labels_for(n, labels, seed))

    def labels_for(self, n: int, labels, seed: int = 0) -> torch.Tensor | None:
        """The class labels of n samples: `labels` checked (an int, or n ints in range), or drawn from the data's
        class frequencies when None; None for an unconditional generator."""
        if not self.conditional:
            if labels is not None:
                raise GanforgeError("this generator is not class-conditional (trained with model.conditional=false); "
                                    "sample it without a class")
            return None
        if labels is None:
            return draw_labels(n, self.class_freq, seed)
        a = np.asarray(labels)
        if a.dtype.kind not in "iu" or (a.ndim == 1 and len(a) != n) or a.ndim > 1:
            raise GanforgeError(f"labels: give one class (an integer) or {n} of them, got {a.dtype} {list(a.shape)}")
        if a.size and (a.min() < 0 or a.max() >= self.n_classes):
            names = self.meta.get("data", {}).get("class_names") or []
            raise GanforgeError(f"labels: classes are 0..{self.n_classes - 1}"
                                + (f" ({', '.join(map(str, names[:12]))}{', ...' if len(names) > 12 else ''})"
                                   if names else "") + f", got {a.min() if a.min() < 0 else a.max()}")
        return torch.as_tensor(np.broadcast_to(a, (n,)).copy(), dtype=torch.int64)

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
        a `ganforge.inversion.Projection` with z, reconstructions, mse and start_mse. Same seed, same result.
        With an encoder, E(x) is one more start; starts=0 then refines E(x) alone (see `encode`)."""
        check_seed(seed, "seed")
        if self.kind == "text":
            raise GanforgeError("projection of a text generator is not supported: its samples are discrete tokens, "
                                "which latents cannot be fitted to by gradient descent")
        if self.conditional:
            raise GanforgeError("projection of a class-conditional generator is not supported yet: it would need "
                                "the class of each item too")
        if starts == 0:
            self.require_encoder()
        target = as_model_input(x, self.kind, self.shape)
        out = project(self.net, target, self.model.z_dim, self.model.prior, steps=steps, lr=lr, starts=starts,
                      prior_weight=prior_weight, seed=seed, batch=batch, device=self.device,
                      encoder=self._encoder_fn())
        return to_projection(*out, self.kind)

    @torch.no_grad()
    def decode(self, z, batch: int = 256, labels=None) -> np.ndarray:
        """Samples of given latents z [N, z_dim] (e.g. from `encode` or `project`), in the layout of `sample`."""
        z = torch.as_tensor(np.asarray(z), dtype=torch.float32)
        if z.ndim != 2 or z.shape[1] != self.model.z_dim:
            raise GanforgeError(f"latents have shape {tuple(z.shape)}; this generator takes [N, {self.model.z_dim}]")
        c = self.labels_for(len(z), labels)
        x = torch.cat([from_model_range(self._net(z[i: i + batch], None if c is None else c[i: i + batch]),
                                        self.kind).cpu() for i in range(0, len(z), batch)])
        return as_items(x, self.kind)

    def _net(self, z: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        z = z.to(self.device)
        return self.net(z) if c is None else self.net(z, c.to(self.device))

    @property
    def has_encoder(self) -> bool:
        """An encoder E maps data to latents in one forward pass: one fitted afterwards (`ganforge encoder RUN`),
        or the one trained with the generator (model.encoder: BiGAN / ALI). The fitted one is used when both exist."""
        return self.encoder is not None or hasattr(self.net, "encode")

    def _encoder_fn(self):
        if self.encoder is not None:
            return self.encoder
        return self.net.encode if hasattr(self.net, "encode") else None

    def require_encoder(self) -> None:
        """A clear error, saying how to get one, when there is no encoder."""
        if self.has_encoder:
            return
        raise GanforgeError("this generator has no encoder" + (f" ({self.encoder_note})" if self.encoder_note else
                            " (it was trained with model.encoder=false)")
                            + "; fit one with `ganforge encoder RUN` (a few minutes), or find latents by optimisation "
                            "with project()")

    def encode(self, x, batch: int = 256, refine: int = 0, lr: float = 0.1, seed: int = 0) -> np.ndarray:
        """Latents float32 [N, z_dim] of data `x` (as for `project`) from the encoder E: one forward pass, then,
        with refine > 0, that many Adam steps of projection started from E(x) (encoder-initialised projection,
        Zhu et al. 2016): close to `project`'s fit at a fraction of its cost."""
        self.require_encoder()
        if self.conditional:
            raise GanforgeError("encoding for a class-conditional generator is not supported: its latents need a "
                                "class each")
        if not isinstance(refine, numbers.Integral) or isinstance(refine, bool) or refine < 0:
            raise GanforgeError(f"refine: a number of optimisation steps >= 0, got {refine!r}")
        if refine:
            return self.project(x, steps=int(refine), lr=lr, starts=0, seed=seed, batch=batch).z
        t = as_model_input(x, self.kind, self.shape)
        fn = self._encoder_fn()
        with torch.no_grad():
            z = [fn(t[i: i + batch].to(self.device)).float().cpu() for i in range(0, len(t), batch)]
        z = torch.cat(z)
        if PRIORS.get(self.model.prior).project is not None:   # a code inside the prior's support
            PRIORS.get(self.model.prior).project(z)
        return z.numpy()

    def _autoencoder(self):
        if self.kind != "text" or not hasattr(self.net, "encode_text"):
            raise GanforgeError(f"this {self.model.arch!r} generator has no text autoencoder; the latent text family "
                                "'arae' has one (model.arch=arae, presets words-arae and sentences-arae)")
        return self.net

    @torch.no_grad()
    def encode_text(self, lines: list[str], batch: int = 256) -> np.ndarray:
        """A latent text generator (`arae`): the codes float32 [N, code_dim] of `lines` (strings), the points of the
        space its G and D play in. A line longer than the generator's rows is cut to its first max_len - 1 tokens."""
        net = self._autoencoder()
        if isinstance(lines, str) or not all(isinstance(x, str) for x in lines):
            raise GanforgeError("encode_text: give a list of strings (one text each)")
        length = self.shape[0]
        ids = self.tokenizer.pad([p[:length - 1] for p in self.tokenizer.pieces(list(lines))], length)
        if not len(ids):
            return np.zeros((0, net.code_dim), np.float32)
        return torch.cat([net.encode_text(ids[i: i + batch].to(self.device)).float().cpu()
                          for i in range(0, len(ids), batch)]).numpy()

    @torch.no_grad()
    def decode_codes(self, codes, batch: int = 256) -> list[str]:
        """A latent text generator (`arae`): the text its decoder reads from codes [N, code_dim] (from
        `encode_text`, or mixtures of them), decoded greedily as its samples are."""
        net = self._autoencoder()
        c = torch.as_tensor(np.asarray(codes), dtype=torch.float32)
        dim = net.code_dim
        if c.ndim != 2 or c.shape[1] != dim:
            raise GanforgeError(f"codes have shape {tuple(c.shape)}; this generator's codes are [N, {dim}]")
        ids = [from_model_range(net.decode(c[i: i + batch].to(self.device)), "text").cpu()
               for i in range(0, len(c), batch)]
        return self.tokenizer.decode(torch.cat(ids)) if ids else []

    @torch.no_grad()
    def interpolate(self, steps: int = 8, seed: int = 0, seed_to: int = 1, label=None) -> np.ndarray:
        """Samples along the path between the latents of two seeds (slerp for a normal prior, lerp for uniform);
        a conditional generator keeps one class along the path (`label`, default: drawn with `seed`)."""
        z0 = sample_prior(1, self.model.z_dim, self.model.prior, torch.Generator().manual_seed(seed))
        z1 = sample_prior(1, self.model.z_dim, self.model.prior, torch.Generator().manual_seed(seed_to))
        z = PRIORS.get(self.model.prior).interpolate(z0, z1, torch.linspace(0, 1, steps)[:, None])
        c = self.labels_for(1, label, seed)
        x = from_model_range(self._net(z, None if c is None else c.expand(steps)), self.kind).cpu()
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
    if kind not in ("image", "vector", "text"):
        raise GanforgeError(f"{where} is damaged or not a ganforge generator (data kind {kind!r})")
    tokenizer = None
    if kind == "text":
        try:
            tokenizer = tokenizer_from_dict(meta["data"]["tokenizer"], f"{where}: data.tokenizer")
        except (KeyError, TypeError) as e:
            raise GanforgeError(f"{where} is damaged: a text generator without its tokeniser ({e})") from None
    n_classes = int(meta["data"].get("n_classes") or 0) if mcfg.conditional else 0
    freq = meta["data"].get("class_freq") if n_classes else None
    net = build_generator(mcfg, shape, kind, n_classes)
    try:
        sd = load_file(str(gdir / "model.safetensors"))
        net.load_state_dict(sd)
    except Exception as e:
        raise GanforgeError(f"{gdir / 'model.safetensors'} is damaged or does not match config.json "
                            f"({type(e).__name__})") from None
    dev = pick_device(device, "--device")
    encoder, note = _load_encoder(gdir, mcfg, shape)
    return Generator(net=net.to(dev).eval(), model=mcfg, kind=kind, shape=shape, meta=meta, device=dev,
                     n_classes=n_classes, encoder=None if encoder is None else encoder.to(dev), encoder_note=note,
                     tokenizer=tokenizer,
                     class_freq=torch.tensor(freq, dtype=torch.float32) if freq else
                     (torch.full((n_classes,), 1.0 / n_classes) if n_classes else None))


def generator_digest(gdir: Path) -> str:
    """sha256 of the exported generator's weights file: what an encoder fitted to it records."""
    import hashlib

    h = hashlib.sha256()
    with open(gdir / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def generator_dir(run_dir: str | Path) -> Path:
    p = Path(run_dir)
    return p if (p / "config.json").is_file() else p / "generator"


def save_encoder(run_dir: str | Path, E: torch.nn.Module, info: dict) -> Path:
    """RUN_DIR/generator/encoder.safetensors + encoder.json for the generator exported there now."""
    from safetensors.torch import save

    gdir = generator_dir(run_dir)
    sd = {k: v.detach().to("cpu").contiguous() for k, v in E.state_dict().items()}
    atomic_write(gdir / "encoder.safetensors", save(sd))
    write_json(gdir / "encoder.json", {"format": ENCODER_FORMAT, "ganforge_version": __version__,
                                       "generator_sha256": generator_digest(gdir), **info})
    return gdir / "encoder.safetensors"


def _load_encoder(gdir: Path, mcfg: ModelConfig, shape) -> tuple[torch.nn.Module | None, str]:
    """The fitted encoder beside the generator -> (E in eval mode, "") or (None, why it was not loaded)."""
    from safetensors.torch import load_file

    meta_path, weights = gdir / "encoder.json", gdir / "encoder.safetensors"
    if not meta_path.is_file() or mcfg.conditional:
        return None, ""
    try:
        meta = read_json(meta_path)
        stale = meta.get("generator_sha256") != generator_digest(gdir)
    except (GanforgeError, OSError, AttributeError) as e:
        return None, f"{meta_path} is unreadable ({type(e).__name__})"
    if stale:
        return None, (f"the encoder in {gdir} was fitted to an earlier export of this generator; fit it again with "
                      "`ganforge encoder RUN`")
    try:
        E = build_encoder(mcfg, shape)
        E.load_state_dict(load_file(str(weights)))
    except Exception as e:  # noqa: BLE001  a damaged or mismatched file
        return None, f"{weights} is damaged or does not match this generator ({type(e).__name__})"
    return E.eval(), ""


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


def save_samples(x: np.ndarray, kind: str, out: str | Path, overwrite: bool = False, labels=None,
                 cols: int | None = None) -> Path:
    """Write samples as .npz (`images` uint8 [N,H,W,C] or `samples` float32 [N,D], and `labels` for a conditional
    generator), one .png grid (`cols` per row), or a folder of PNGs (`<index>-class<k>.png` when labelled).
    Text (a list of strings): a .txt file, one sample per line, or a .npz with `texts`.
    Nothing that exists is replaced unless overwrite=True."""
    from PIL import Image

    out = check_output(out, overwrite)
    if kind == "text":
        return _save_text(x, out)
    if out.suffix == "" and out.is_dir() and any(out.iterdir()) and not overwrite:
        raise GanforgeError(f"--out {str(out)!r} is a folder that is not empty; choose another, or pass --overwrite")
    if out.suffix == ".npz":
        arrays = {"images" if kind == "image" else "samples": x}
        if labels is not None:
            arrays["labels"] = np.asarray(labels, dtype=np.int64)
        save_npz(out, **arrays)
    elif out.suffix == ".png":
        if kind == "image":
            save_image_grid(x, out, scale=1, cols=cols)
        else:
            save_scatter(x, None, out)
    elif out.suffix == "":
        if kind != "image":
            raise GanforgeError(f"--out {str(out)!r}: a folder of PNGs needs image samples; use .npz for vectors")
        out.mkdir(parents=True, exist_ok=True)
        c = x.shape[-1]
        for i, img in enumerate(x):
            name = f"{i:06d}.png" if labels is None else f"{i:06d}-class{int(labels[i])}.png"
            Image.fromarray(img[..., 0] if c == 1 else img).save(out / name)
    else:
        raise GanforgeError(f"--out {str(out)!r}: use a .npz file, a .png grid, or a folder name")
    return out


def _save_text(lines: list[str], out: Path) -> Path:
    """Text samples: a .txt file, one sample per line, or a .npz with `texts` (unicode [N])."""
    if out.suffix == ".txt":
        atomic_write(out, "".join(line + "\n" for line in lines).encode("utf-8"))
    elif out.suffix == ".npz":
        save_npz(out, texts=np.array(lines, dtype=str))
    else:
        raise GanforgeError(f"--out {str(out)!r}: text samples go to a .txt file (one per line) or a .npz")
    return out


set_run_loader(load)  # the code-space metric's judge is an exported generator (metrics/text.py code_fd)
