"""CLIP image features from user-supplied weights: a Frechet distance in CLIP's image-embedding space.

FD in CLIP features ("FD_CLIP", e.g. Kynkaanniemi et al. 2023, "The Role of ImageNet Classes in Frechet Inception
Distance"; Stein et al. 2023) depends less on ImageNet classes than FID. Feature space `clip`: the image embedding
of an OpenAI CLIP ViT (Radford et al. 2021), i.e. `encode_image`: ln_post of the class token, times `proj`, not
L2-normalised ({"embed": [N, E]}, E = 512 for ViT-B/32). Metric `fd_clip` (Frechet distance: fd_clip) uses
ganforge's own Frechet code. (dgm-eval's CLIP encoder stops before `proj`: its numbers are not comparable.)

The visual tower is built here in plain PyTorch and reads the `visual.*` keys of an OpenAI CLIP state_dict
(`visual.conv1.weight`, `visual.class_embedding`, `visual.positional_embedding`, `visual.ln_pre`,
`visual.transformer.resblocks.N.{ln_1, attn.in_proj_weight, attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc,
mlp.c_proj}`, `visual.ln_post`, `visual.proj`) with a strict check of those keys; the text tower's keys are
ignored, and a state_dict of the visual tower alone (no `visual.` prefix) loads too. Sizes come from the shapes
(width, layers, patch, grid; heads = width / 64, as OpenAI's `build_model`); the input resolution is patch x grid
(224 for ViT-B/32). Activation QuickGELU, LayerNorm eps 1e-5: OpenAI's weights (open_clip's "openai" copies have
the same keys); LAION-trained open_clip models use GELU and would give other features. A re-implementation of
openai/CLIP `clip/model.py` (MIT licence), no code copied; the weights are the user's file under OpenAI's terms.

OpenAI publishes TorchScript archives (`ViT-B-32.pt`), which ganforge does not execute: convert one once to a
state_dict (`torch.save(torch.jit.load("ViT-B-32.pt", map_location="cpu").state_dict(), "clip_vit_b32.pth")`).
Nothing is downloaded: the weights are found by `resolve_weights` (explicit path, else $GANFORGE_CLIP_WEIGHTS, else
`<cache>/weights/clip_vit_b32.pth`) and their SHA-256 is stamped in the protocol.

Preprocessing as CLIP's `_transform` (torchvision Resize(n, BICUBIC) of the shorter side on a PIL image,
CenterCrop(n), ToTensor, Normalize with CLIP's mean / std), bit for bit for RGB and grey images (the resize is
`dinov2.resize_pil_bicubic`, Pillow's 8-bit bicubic; alpha is dropped before it, CLIP drops it after).
"""
from __future__ import annotations

import contextlib
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.base import Data, cache_dir
from ..errors import GanforgeError
from .dinov2 import check_images, resize_pil_bicubic
from .evaluate import METRICS, SPACES, Inputs, MetricSpec, SpaceContext, SpaceSpec, _fid
from .features import FeatureDict, Space
from . import weights
from .inception import weights_sha256

WEIGHTS_FILE = "clip_vit_b32.pth"
WEIGHTS_URL = ("https://openaipublic.azureedge.net/clip/models/"
               "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt")   # TorchScript
WEIGHTS_ENV = "GANFORGE_CLIP_WEIGHTS"
MEAN = (0.48145466, 0.4578275, 0.40821073)   # CLIP's, not ImageNet's
STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_DIM = 64
SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_NAMES = {(768, 12, 32): "ViT-B/32", (768, 12, 16): "ViT-B/16", (1024, 24, 14): "ViT-L/14"}

# --------------------------------------------------------------------------------------------------------------
# Network


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1 x), then + mlp(ln_2 x); attention as nn.MultiheadAttention (in_proj_weight, out_proj)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(width, 4 * width)
        self.mlp.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:       # [N, T, D]
        h = self.ln_1(x)
        b, t, d = h.shape
        heads = self.attn.num_heads
        q, k, v = F.linear(h, self.attn.in_proj_weight, self.attn.in_proj_bias).view(b, t, 3, heads, d // heads) \
            .permute(2, 0, 3, 1, 4)                                                         # 3 x [N, h, T, d/h]
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.attn.out_proj(a)
        h = self.mlp.c_fc(self.ln_2(x))
        return x + self.mlp.c_proj(h * torch.sigmoid(1.702 * h))                           # QuickGELU


@dataclass(frozen=True)
class CLIPArch:
    """The size of a CLIP ViT image tower, as read from its state_dict by `arch_from_state`."""

    width: int
    layers: int
    heads: int
    patch: int
    grid: int
    embed: int           # output dim of proj

    @property
    def resolution(self) -> int:
        return self.patch * self.grid

    @property
    def name(self) -> str:
        return _NAMES.get((self.width, self.layers, self.patch), f"ViT-{self.width}x{self.layers}/{self.patch}")

    def describe(self) -> str:
        return (f"width {self.width}, {self.layers} layers, {self.heads} head{'s' if self.heads > 1 else ''}, patch "
                f"{self.patch}, {self.resolution}x{self.resolution} input, embedding {self.embed}-d")


class CLIPVisual(nn.Module):
    """Normalised images [N, 3, R, R] (R = patch x grid) -> image embeddings [N, E]."""

    def __init__(self, arch: CLIPArch) -> None:
        super().__init__()
        w = arch.width
        self.arch = arch
        self.conv1 = nn.Conv2d(3, w, arch.patch, stride=arch.patch, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(w))
        self.positional_embedding = nn.Parameter(torch.zeros(arch.grid ** 2 + 1, w))
        self.ln_pre = nn.LayerNorm(w)
        self.transformer = nn.Module()
        self.transformer.resblocks = nn.ModuleList(ResidualAttentionBlock(w, arch.heads) for _ in range(arch.layers))
        self.ln_post = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.zeros(w, arch.embed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.arch.resolution
        if tuple(x.shape[-2:]) != (r, r):
            raise GanforgeError(f"this CLIP model reads {r}x{r} images, got {tuple(x.shape[-2:])}")
        t = self.conv1(x).flatten(2).transpose(1, 2)                                   # [N, grid^2, D]
        t = torch.cat([self.class_embedding.to(t.dtype).expand(len(t), 1, -1), t], 1)  # [N, 1 + grid^2, D]
        t = self.ln_pre(t + self.positional_embedding.to(t.dtype))
        for blk in self.transformer.resblocks:
            t = blk(t)
        return self.ln_post(t[:, 0]) @ self.proj                                       # [N, E]


# --------------------------------------------------------------------------------------------------------------
# Reading the state_dict


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")


def _layout_error(origin: str, missing: list[str], unexpected: list[str]) -> GanforgeError:
    parts = ([f"missing keys {_some(missing)}"] if missing else []) + \
            ([f"unexpected keys {_some(unexpected)}"] if unexpected else [])
    return GanforgeError(f"{origin} does not hold an OpenAI CLIP ViT image tower (visual.conv1.weight, "
                         f"visual.class_embedding, visual.transformer.resblocks.N..., visual.proj): {'; '.join(parts)}")


def visual_state(state: dict[str, torch.Tensor], origin: str = "the state_dict") -> dict[str, torch.Tensor]:
    """The image tower's tensors without the `visual.` prefix (the text tower's keys dropped), as float32."""
    if any(k.startswith("visual.") for k in state):
        state = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    if "layer1.0.conv1.weight" in state:
        raise GanforgeError(f"{origin} holds a ResNet CLIP (visual.layer1...); only the ViT image towers are supported")
    if "conv1.weight" not in state:
        prefixed = [k[:-len("visual.conv1.weight")] for k in state if k.endswith(".visual.conv1.weight")]
        if prefixed:
            raise GanforgeError(f"{origin}: the CLIP keys carry the prefix {prefixed[0]!r} "
                                f"({prefixed[0]}visual.conv1.weight, ...); save the model's own state_dict, with keys "
                                "such as visual.conv1.weight")
        raise _layout_error(origin, ["visual.conv1.weight"], sorted(state)[:6])
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def arch_from_state(vis: dict[str, torch.Tensor], origin: str = "the state_dict") -> CLIPArch:
    """Sizes from the shapes: conv1.weight [D, 3, p, p], positional_embedding [1 + g^2, D], proj [D, E], the
    resblock indices (as OpenAI's `build_model`)."""
    need = ["conv1.weight", "positional_embedding", "proj"]
    if [k for k in need if k not in vis]:
        raise _layout_error(origin, ["visual." + k for k in need if k not in vis], [])
    w, pos, proj = vis["conv1.weight"], vis["positional_embedding"], vis["proj"]
    if w.ndim != 4 or w.shape[1] != 3 or w.shape[2] != w.shape[3]:
        raise GanforgeError(f"{origin}: visual.conv1.weight has shape {tuple(w.shape)}, expected [D, 3, p, p]")
    d, p = int(w.shape[0]), int(w.shape[2])
    g = math.isqrt(max(pos.shape[0] - 1, 0)) if pos.ndim == 2 else 0
    if g < 1 or g * g + 1 != pos.shape[0]:
        raise GanforgeError(f"{origin}: visual.positional_embedding has shape {tuple(pos.shape)}, expected "
                            f"[1 + g*g, {d}] (a square grid plus the class token)")
    heads = max(1, d // HEAD_DIM)
    if d % heads or (d >= HEAD_DIM and d % HEAD_DIM):
        raise GanforgeError(f"{origin}: width {d} is not a multiple of CLIP's head width {HEAD_DIM}, so the number "
                            "of heads cannot be read from the weights")
    if proj.ndim != 2:
        raise GanforgeError(f"{origin}: visual.proj has shape {tuple(proj.shape)}, expected [{d}, E]")
    idx = {int(m.group(1)) for k in vis if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
    return CLIPArch(d, max(idx) + 1 if idx else 0, heads, p, g, int(proj.shape[1]))


def build_from_state(state: object, origin: str = "the state_dict") -> CLIPVisual:
    """A CLIPVisual (eval mode, float32, on CPU, no grad) sized by and loaded from the `visual.*` tensors of
    `state`, with a strict check of those keys."""
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GanforgeError(f"{origin} is not a state_dict of tensors (expected a CLIP state_dict such as "
                            f"{WEIGHTS_FILE}; OpenAI's ViT-B-32.pt must be converted first, see ganforge.metrics.clip)")
    vis = visual_state(state, origin)
    with torch.device("meta"):
        net = CLIPVisual(arch_from_state(vis, origin))
    expected = net.state_dict().keys()
    missing, unexpected = sorted(expected - vis.keys()), sorted(vis.keys() - expected)
    if missing or unexpected or not net.arch.layers:
        raise _layout_error(origin, ["visual." + k for k in missing], ["visual." + k for k in unexpected])
    try:
        net.load_state_dict(vis, strict=True, assign=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:3] if ln.strip()]
        raise GanforgeError(f"{origin} does not hold consistent CLIP weights: {' '.join(lines)}") from None
    return net.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------------------------
# Weights


def _fix(where: Path) -> str:
    return (f"put a CLIP ViT-B/32 state_dict (.pth, .pt, .bin or .safetensors; OpenAI's TorchScript {WEIGHTS_URL} "
            f"converted with torch.jit.load(...).state_dict()) at {where}, or set ${WEIGHTS_ENV} to its path")


def default_weights_path(cache: str | os.PathLike | None = None) -> Path:
    return (Path(cache) if cache else cache_dir()) / "weights" / WEIGHTS_FILE


def resolve_weights(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Path:
    """Where the CLIP weights are: `path`, else $GANFORGE_CLIP_WEIGHTS, else `<cache>/weights/clip_vit_b32.pth`.
    Never downloads."""
    return weights.resolve("CLIP", path, WEIGHTS_ENV, default_weights_path(cache), _fix)


def weights_available(cache: str | os.PathLike | None = None) -> bool:
    """True when `resolve_weights(cache=cache)` would find a file."""
    return weights.available(WEIGHTS_ENV, default_weights_path(cache))


def read_state(p: Path) -> dict:
    """The tensors of a .pth / .pt / .bin (torch.load, weights_only) or .safetensors file; TorchScript refused."""
    def torchscript(e: Exception) -> None:
        if "TorchScript" in str(e):
            raise GanforgeError(
                f"{p} is a TorchScript archive (OpenAI's ViT-B-32.pt format), which ganforge does not run; convert it "
                f"once: python -c \"import torch; torch.save(torch.jit.load('{p}', map_location='cpu').state_dict(), "
                f"'{WEIGHTS_FILE}')\" and use {WEIGHTS_FILE}") from None

    return weights.read(p, "CLIP", SUFFIXES, _fix(p), on_error=torchscript)


def load_clip(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
              device: str | torch.device = "cpu") -> tuple[CLIPVisual, dict]:
    """(image tower in eval mode on CPU, protocol dict) with the weights from `resolve_weights(path, cache)`."""
    p = resolve_weights(path, cache)
    sha = weights_sha256(p)
    net = build_from_state(read_state(p), str(p))
    a, r = net.arch, net.arch.resolution
    cuda = torch.device(device).type == "cuda"
    protocol = dict(
        features=f"CLIP {a.name} image embedding (ln_post of the class token @ proj, not normalised), {a.embed}-d",
        network=a.describe() + ", QuickGELU", weights=p.name, weights_sha256=sha,
        resize=f"Pillow bicubic of the shorter side to {r}, bit-exact, then center crop {r}x{r} (CLIP's _transform)",
        normalize=f"x / 255, CLIP mean {MEAN}, std {STD}", channels="grey repeated to RGB, alpha dropped",
        dtype="bf16 autocast (CUDA), features float32" if cuda else "float32",
    )
    return net, protocol


# --------------------------------------------------------------------------------------------------------------
# Preprocessing and features


def resize_crop_size(h: int, w: int, n: int) -> tuple[int, int, int, int]:
    """torchvision Resize(n) (shorter side to n, the longer one int(n * long / short)) then CenterCrop(n):
    -> (resized h, resized w, crop top, crop left)."""
    if h <= w:
        rh, rw = n, int(n * w / h)
    else:
        rh, rw = int(n * h / w), n
    return rh, rw, int(round((rh - n) / 2.0)), int(round((rw - n) / 2.0))


def preprocess(x: torch.Tensor, size: int = 224) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, 3, size, size]: RGB, Pillow bicubic of the shorter side to `size`, center
    crop, / 255, CLIP mean / std."""
    check_images(x, "the CLIP features")
    x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
    rh, rw, top, left = resize_crop_size(x.shape[2], x.shape[3], size)
    x = resize_pil_bicubic(x, (rh, rw))[:, :, top:top + size, left:left + size]
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


@torch.inference_mode()
def clip_features(net: CLIPVisual, x: torch.Tensor, batch_size: int = 64,
                  device: str | torch.device = "cpu") -> FeatureDict:
    """uint8 images [N, C, H, W] -> {"embed": [N, E]} float32 on CPU; float32 compute, bf16 autocast on CUDA."""
    device = torch.device(device)
    net = net.to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    out = []
    for s in range(0, len(x), batch_size):
        xb = preprocess(x[s:s + batch_size].to(device), net.arch.resolution)
        with amp:
            out.append(net(xb).float().cpu())
    return {"embed": torch.cat(out) if out else torch.zeros(0, net.arch.embed)}


# --------------------------------------------------------------------------------------------------------------
# Registration


@dataclass
class WeightsOptions:
    weights: str = ""   # path of the weights file ("" = $GANFORGE_CLIP_WEIGHTS, else the cache)


def clip_space(ctx: SpaceContext, path: str | os.PathLike | None = None) -> Space:
    """The `clip` feature space with the weights of `resolve_weights(path, ctx.weights_dir)`."""
    net, proto = load_clip(path, ctx.weights_dir, ctx.device)
    return Space("clip", "embed", proto, lambda x: clip_features(net, x, ctx.batch_size, ctx.device))


def _check_data(data: Data) -> None:
    if data.kind != "image":
        raise GanforgeError(f"the CLIP features are for images, but {data.name!r} is {data.kind} data")
    check_images(data.x, f"the CLIP features of {data.name!r}")


def _fd_clip(inp: Inputs) -> tuple[dict[str, float], dict]:
    values, extra = _fid(inp)
    return {"fd_clip": next(iter(values.values()))}, extra


SPACES.register("clip")(SpaceSpec(lambda real, ctx: clip_space(ctx, ctx.options.get("weights") or None),
                                  check=_check_data,
                                  doc=f"CLIP ViT image embedding (512-d for ViT-B/32); needs the weights file "
                                      f"(${WEIGHTS_ENV} or <cache>/weights/{WEIGHTS_FILE})"))
METRICS.register("fd_clip", options=WeightsOptions)(
    MetricSpec("fd_clip", "Frechet distance in CLIP image embeddings (FD_CLIP): fd_clip", {"image": "clip"}, _fd_clip))
