"""DINOv2 features from user-supplied weights: FD / KID / precision-recall in a self-supervised ViT's space.

Inception features rank generators against human judgement worse than DINOv2's (Stein et al. 2023, "Exposing
flaws of generative model evaluation metrics and their unfair treatment of diffusion models"; their dgm-eval
package reports FD_DINOv2). Feature space `dinov2`: the CLS token of a DINOv2 ViT (Oquab et al. 2023) after its
final LayerNorm, {"cls": [N, D]} (D = 384 for ViT-S/14, 768 B/14, 1024 L/14, 1536 g/14). Metrics `fd_dinov2`
(Frechet distance: fd_dinov2), `kid_dinov2` (kid_dinov2, kid_dinov2_std) and `pr_dinov2` (precision, recall) use
ganforge's own Frechet / KID / precision-recall code on those features.

The network is built here in plain PyTorch and reads the official state_dicts (`dinov2_vit{s,b,l,g}14[_reg4]
_pretrain.pth`, keys `cls_token`, `pos_embed`, `mask_token`, `patch_embed.proj.*`, `blocks.N.{norm1, attn.qkv,
attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2 (ViT-g: mlp.w12, mlp.w3), ls2.gamma}`, `norm.*`) with a strict key
check; the size is read from the shapes (embed dim, depth, patch, MLP width; heads = embed dim / 64, the head
width of every DINOv2 model). It is a re-implementation of facebookresearch/dinov2 `vision_transformer.py` and
`layers/` (Apache License 2.0), no code copied; the weights are the user's file under Meta's terms. Nothing is
downloaded: the weights are found by `resolve_weights` (explicit path, else $GANFORGE_DINOV2_WEIGHTS, else
`<cache>/weights/dinov2_vits14_pretrain.pth`) and their SHA-256 is stamped in the protocol.

Preprocessing as dgm-eval's DINOv2 encoder (torchvision `Resize((224, 224), BICUBIC)` on an RGB PIL image,
`ToTensor`, ImageNet `Normalize`), bit for bit: grey repeated to RGB, alpha dropped; Pillow's 8-bit bicubic resize
(a = -0.5, antialiased when shrinking, fixed-point weights, horizontal pass then vertical, each rounded to uint8)
as two exact integer matrix products (`resize_pil_bicubic`); / 255; ImageNet mean / std. Pillow 13 does the
vertical pass first when the height shrinks much more than the width (python-pillow/Pillow#9549): such non-square
images then differ from it by a few levels; square images do not. At 224x224 the pretrained 37x37 position
embeddings are interpolated bicubically to 16x16 with DINOv2's scale factor (16 + 0.1) / 37.
dgm-eval's default network is ViT-L/14 (`dinov2_vitl14_pretrain.pth`); any size loads, and the protocol names it.
"""
from __future__ import annotations

import contextlib
import functools
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
from .evaluate import METRICS, SPACES, Inputs, MetricSpec, SpaceContext, SpaceSpec, _fid, _kid, _pr
from .features import FeatureDict, Space
from . import weights
from .inception import weights_sha256

WEIGHTS_FILE = "dinov2_vits14_pretrain.pth"
WEIGHTS_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vits14/" + WEIGHTS_FILE
WEIGHTS_ENV = "GANFORGE_DINOV2_WEIGHTS"
INPUT_SIZE = 224
MEAN = (0.485, 0.456, 0.406)   # ImageNet, as dgm-eval
STD = (0.229, 0.224, 0.225)
HEAD_DIM = 64                  # every DINOv2 model: heads = embed_dim / 64
LN_EPS = 1e-6
INTERPOLATE_OFFSET = 0.1       # DINOv2's position-embedding interpolation scale is (grid + 0.1) / pretrained grid
SUFFIXES = (".pth", ".pt", ".safetensors")
_NAMES = {(384, 12): "ViT-S", (768, 12): "ViT-B", (1024, 24): "ViT-L", (1536, 40): "ViT-g"}

# --------------------------------------------------------------------------------------------------------------
# Network


class LayerScale(nn.Module):
    """x * gamma [D] (per-channel residual scale, `ls1.gamma` / `ls2.gamma`)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Attention(nn.Module):
    """Multi-head self-attention [B, T, D] -> [B, T, D]: one qkv linear, softmax(q k^T / sqrt(d)) v, proj."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x [B, h, T, d/h]
        y = F.scaled_dot_product_attention(q, k, v)                                               # [B, h, T, d/h]
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """fc1 -> GELU (erf) -> fc2 (ViT-S/B/L)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLU(nn.Module):
    """w12 -> (a, b) -> silu(a) * b -> w3 (ViT-g/14's feed-forward; hidden width read from the weights)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then + ls2(mlp(norm2 x))."""

    def __init__(self, arch: "ViTArch") -> None:
        super().__init__()
        d = arch.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.attn = Attention(d, arch.heads)
        self.ls1 = LayerScale(d) if arch.layerscale else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=LN_EPS)
        self.mlp = (SwiGLU if arch.ffn == "swiglu" else Mlp)(d, arch.hidden)
        self.ls2 = LayerScale(d) if arch.layerscale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


@dataclass(frozen=True)
class ViTArch:
    """The size of a DINOv2 ViT, as read from its state_dict by `arch_from_state`."""

    embed_dim: int
    depth: int
    heads: int
    patch: int
    grid: int            # side of the pretrained position-embedding grid (37 for the 518x518 checkpoints)
    hidden: int          # feed-forward width
    ffn: str             # "mlp" (GELU) or "swiglu"
    layerscale: bool
    registers: int       # extra tokens of the *_reg4 models (no position embedding)

    @property
    def name(self) -> str:
        base = _NAMES.get((self.embed_dim, self.depth), f"ViT-{self.embed_dim}x{self.depth}")
        return f"{base}/{self.patch}" + (f" with {self.registers} registers" if self.registers else "")

    def describe(self) -> str:
        heads = f"{self.heads} head" + ("s" if self.heads > 1 else "")
        return (f"embed {self.embed_dim}, depth {self.depth}, {heads}, patch {self.patch}, "
                f"{'SwiGLU' if self.ffn == 'swiglu' else 'GELU MLP'} {self.hidden}, "
                f"{'LayerScale, ' if self.layerscale else ''}pos_embed {self.grid}x{self.grid}"
                + (f", {self.registers} registers" if self.registers else ""))


class DINOv2ViT(nn.Module):
    """Normalised images [N, 3, H, W] (H, W multiples of the patch) -> CLS token after the final norm [N, D]."""

    def __init__(self, arch: ViTArch) -> None:
        super().__init__()
        d = arch.embed_dim
        self.arch = arch
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, arch.patch, stride=arch.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + arch.grid ** 2, d))
        if arch.registers:
            self.register_tokens = nn.Parameter(torch.zeros(1, arch.registers, d))
        self.mask_token = nn.Parameter(torch.zeros(1, d))   # masked-image training only; here for strict loading
        self.blocks = nn.ModuleList(Block(arch) for _ in range(arch.depth))
        self.norm = nn.LayerNorm(d, eps=LN_EPS)

    def interpolate_pos_embed(self, gh: int, gw: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """pos_embed for a gh x gw patch grid [1, 1 + gh gw, D]: the patch part resized bicubically (no antialias)
        in float32 with scale factors ((gh + 0.1) / M, (gw + 0.1) / M) as DINOv2 does (not by output size: the
        values differ), then cast to `dtype` (the tokens'); the pretrained one when the grid matches."""
        m = self.arch.grid
        if gh == gw == m:
            return self.pos_embed
        pos = self.pos_embed.float()
        cls, patches = pos[:, :1], pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)    # [1, D, M, M]
        patches = F.interpolate(patches, scale_factor=((gh + INTERPOLATE_OFFSET) / m, (gw + INTERPOLATE_OFFSET) / m),
                                mode="bicubic", antialias=False)                           # [1, D, gh, gw]
        if patches.shape[-2:] != (gh, gw):
            raise GanforgeError(f"DINOv2 position embeddings: {m}x{m} resized to {tuple(patches.shape[-2:])}, "
                                f"not {gh}x{gw}")
        return torch.cat([cls, patches.flatten(2).transpose(1, 2)], 1).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.arch.patch
        if x.shape[-2] % p or x.shape[-1] % p:
            raise GanforgeError(f"DINOv2 input {tuple(x.shape[-2:])} is not a multiple of the patch size {p}")
        t = self.patch_embed.proj(x)                                           # [N, D, H/p, W/p]
        gh, gw = t.shape[-2:]
        t = t.flatten(2).transpose(1, 2)                                       # [N, T, D]
        t = torch.cat([self.cls_token.expand(len(t), -1, -1), t], 1)           # [N, 1 + T, D]
        t = t + self.interpolate_pos_embed(gh, gw, t.dtype)
        if self.arch.registers:                                                # registers after the CLS token
            t = torch.cat([t[:, :1], self.register_tokens.expand(len(t), -1, -1), t[:, 1:]], 1)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t[:, 0])   # LayerNorm is per token: norm(t)[:, 0] == norm(t[:, 0])


# --------------------------------------------------------------------------------------------------------------
# Reading the state_dict


def _layout_error(origin: str, missing: list[str], unexpected: list[str]) -> GanforgeError:
    def some(keys: list[str]) -> str:
        return ", ".join(keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")

    parts = ([f"missing keys {some(missing)}"] if missing else []) + \
            ([f"unexpected keys {some(unexpected)}"] if unexpected else [])
    return GanforgeError(f"{origin} does not hold DINOv2 ViT weights in the official layout of {WEIGHTS_FILE} "
                         f"(cls_token, pos_embed, patch_embed.proj.weight, blocks.N.attn.qkv.weight, ...): "
                         f"{'; '.join(parts)}")


def arch_from_state(state: dict[str, torch.Tensor], origin: str = "the state_dict") -> ViTArch:
    """The ViT size from the shapes: patch_embed.proj.weight [D, 3, p, p], pos_embed [1, 1 + M^2, D], the block
    indices, the feed-forward weights, the LayerScale / register keys."""
    need = ["patch_embed.proj.weight", "pos_embed", "cls_token", "blocks.0.norm1.weight"]
    prefixed = [k[:-len("cls_token")] for k in state if k.endswith(".cls_token")]
    if "cls_token" not in state and prefixed:   # a training checkpoint (module., backbone., teacher.backbone.)
        raise GanforgeError(f"{origin}: the DINOv2 keys carry the prefix {prefixed[0]!r} ({prefixed[0]}cls_token, "
                            "...); save the backbone's own state_dict, with the keys of the official "
                            f"{WEIGHTS_FILE} (cls_token, pos_embed, blocks.N. ...)")
    if [k for k in need if k not in state]:
        known = ("cls_token", "pos_embed", "mask_token", "register_tokens", "patch_embed.", "blocks.", "norm.")
        raise _layout_error(origin, [k for k in need if k not in state],
                            sorted(k for k in state if not k.startswith(known)))
    w = state["patch_embed.proj.weight"]
    if w.ndim != 4 or w.shape[1] != 3 or w.shape[2] != w.shape[3]:
        raise GanforgeError(f"{origin}: patch_embed.proj.weight has shape {tuple(w.shape)}, expected [D, 3, p, p]")
    d, p = int(w.shape[0]), int(w.shape[2])
    n_pos = state["pos_embed"].shape[1] - 1 if state["pos_embed"].ndim == 3 else -1
    m = math.isqrt(max(n_pos, 0))
    if n_pos < 1 or m * m != n_pos:
        raise GanforgeError(f"{origin}: pos_embed has shape {tuple(state['pos_embed'].shape)}, expected "
                            f"[1, 1 + M*M, {d}] (a square grid plus the CLS token)")
    heads = max(1, d // HEAD_DIM)   # below 64 (test models): one head
    if d % heads or (d >= HEAD_DIM and d % HEAD_DIM):
        raise GanforgeError(f"{origin}: embed dim {d} is not a multiple of DINOv2's head width {HEAD_DIM}, so the "
                            "number of heads cannot be read from the weights")
    idx = {int(mt.group(1)) for k in state if (mt := re.match(r"blocks\.(\d+)\.", k))}
    depth = max(idx) + 1
    if "blocks.0.mlp.w12.weight" in state:
        ffn, hidden = "swiglu", int(state["blocks.0.mlp.w12.weight"].shape[0]) // 2
    elif "blocks.0.mlp.fc1.weight" in state:
        ffn, hidden = "mlp", int(state["blocks.0.mlp.fc1.weight"].shape[0])
    else:
        raise _layout_error(origin, ["blocks.0.mlp.fc1.weight (or mlp.w12.weight)"], [])
    reg = state.get("register_tokens")
    return ViTArch(d, depth, heads, p, m, hidden, ffn, "blocks.0.ls1.gamma" in state,
                   int(reg.shape[1]) if reg is not None and reg.ndim == 3 else 0)


def build_from_state(state: object, origin: str = "the state_dict") -> DINOv2ViT:
    """A DINOv2ViT (eval mode, float32, on CPU, no grad) sized by and loaded from `state` with a strict key check."""
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GanforgeError(f"{origin} is not a state_dict of tensors (expected a DINOv2 file such as {WEIGHTS_FILE} "
                            f"from {WEIGHTS_URL})")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}   # fp16 / bf16 copies
    arch = arch_from_state(state, origin)
    with torch.device("meta"):   # no random init, no second copy of the weights (ViT-g/14 is 4.5 GB)
        net = DINOv2ViT(arch)
    expected = net.state_dict().keys()
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise _layout_error(origin, missing, unexpected)
    try:
        net.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:   # shape mismatches: name the first ones
        lines = [ln.strip() for ln in str(e).splitlines()[1:3] if ln.strip()]
        raise GanforgeError(f"{origin} does not hold consistent DINOv2 ViT weights: {' '.join(lines)}") from None
    return net.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------------------------
# Weights


def _fix(where: Path) -> str:
    return (f"download {WEIGHTS_FILE} (from {WEIGHTS_URL}; or another official dinov2_vit*14_pretrain.pth) and put it "
            f"at {where}, or set ${WEIGHTS_ENV} to its path (.pth, .pt or .safetensors)")


def default_weights_path(cache: str | os.PathLike | None = None) -> Path:
    return (Path(cache) if cache else cache_dir()) / "weights" / WEIGHTS_FILE


def resolve_weights(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None) -> Path:
    """Where the DINOv2 weights are: `path`, else $GANFORGE_DINOV2_WEIGHTS, else
    `<cache or cache_dir()>/weights/dinov2_vits14_pretrain.pth`. Never downloads."""
    return weights.resolve("DINOv2", path, WEIGHTS_ENV, default_weights_path(cache), _fix)


def weights_available(cache: str | os.PathLike | None = None) -> bool:
    """True when `resolve_weights(cache=cache)` would find a file."""
    return weights.available(WEIGHTS_ENV, default_weights_path(cache))


def read_state(p: Path) -> dict:
    """The tensors of a .pth / .pt (torch.load, weights_only: no pickled code runs) or .safetensors file."""
    return weights.read(p, "DINOv2", SUFFIXES, f"replace it with the official {WEIGHTS_FILE} from {WEIGHTS_URL}")


def load_dinov2(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                device: str | torch.device = "cpu") -> tuple[DINOv2ViT, dict]:
    """(network in eval mode on CPU, protocol dict) with the weights from `resolve_weights(path, cache)`."""
    p = resolve_weights(path, cache)
    sha = weights_sha256(p)
    net = build_from_state(read_state(p), str(p))
    a = net.arch
    m, g = a.grid, INPUT_SIZE // a.patch
    cuda = torch.device(device).type == "cuda"
    protocol = dict(
        features=f"DINOv2 {a.name} CLS token after the final LayerNorm, {a.embed_dim}-d (dgm-eval FD_DINOv2)",
        network=a.describe(), weights=p.name, weights_sha256=sha,
        resize=f"Pillow bicubic to {INPUT_SIZE}x{INPUT_SIZE}, bit-exact (8-bit fixed point, horizontal pass first; "
               "torchvision Resize on PIL images, as dgm-eval)",
        pos_embed=f"{m}x{m} -> {g}x{g}, bicubic, scale ({g} + {INTERPOLATE_OFFSET}) / {m} (DINOv2)" if m != g
        else f"{m}x{m} as trained",
        normalize=f"x / 255, ImageNet mean {MEAN}, std {STD}", channels="grey repeated to RGB, alpha dropped",
        dtype="bf16 autocast (CUDA), features float32" if cuda else "float32",
    )
    return net, protocol


# --------------------------------------------------------------------------------------------------------------
# Preprocessing and features


def check_images(x: torch.Tensor, what: str = "the DINOv2 features") -> None:
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise GanforgeError(f"{what} need uint8 images [N, C, H, W] with C = 1, 3 or 4, got {x.dtype} "
                            f"{tuple(x.shape)}")


PIL_BITS = 22   # Pillow's fixed-point precision for 8-bit resampling (PRECISION_BITS = 32 - 8 - 2)


def _pil_cubic(t: float) -> float:
    """Pillow's bicubic kernel (Keys, a = -0.5), support 2, in double precision as Pillow computes it."""
    a, t = -0.5, abs(t)
    if t < 1.0:
        return ((a + 2.0) * t - (a + 3.0)) * t * t + 1
    if t < 2.0:
        return (((t - 5) * t + 8) * t - 4) * a
    return 0.0


@functools.lru_cache(maxsize=32)
def pil_bicubic_weights(n_in: int, n_out: int) -> torch.Tensor:
    """Pillow's 8-bit bicubic resampling of one axis as an integer matrix float64 [n_out, n_in] (Pillow's
    `precompute_coeffs` + `normalize_coeffs_8bpc`, the same double operations in the same order): output i averages
    the inputs within 2 * max(scale, 1) of its centre (i + 0.5) * scale, the kernel stretched by max(scale, 1)
    (antialiasing when shrinking), the weights normalised to sum 1 and rounded to multiples of 2^-22 (half away
    from zero)."""
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support, inv = 2.0 * fscale, 1.0 / fscale
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        center = (i + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        k = [_pil_cubic((j - center + 0.5) * inv) for j in range(lo, hi)]
        total = 0.0
        for v in k:   # left to right, as Pillow (not Python's compensated sum)
            total += v
        k = [v / total for v in k] if total != 0.0 else k
        w[i, lo:hi] = torch.tensor([float(int(v * (1 << PIL_BITS) + (-0.5 if v < 0 else 0.5))) for v in k],
                                   dtype=torch.float64)
    return w


def resize_pil_bicubic(x: torch.Tensor, size: int | tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
    """uint8-valued [N, C, H, W] -> float32 [N, C, h, w] (size = (h, w), or h = w = size) with the values of
    Pillow's `Image.resize((w, h), BICUBIC)` on 8-bit images, bit for bit: the horizontal pass, then the vertical
    one, each an integer sum + 2^21 shifted right by 22 bits and clipped to [0, 255] (a pass is skipped when that
    side already has the size, as Pillow does). The sums are exact integers in float64 (< 2^33)."""
    h, w = (size, size) if isinstance(size, int) else size
    dev = x.device if x.device.type != "mps" else torch.device("cpu")   # MPS has no float64
    y = x.to(dev, torch.float64)
    half, one = float(1 << (PIL_BITS - 1)), float(1 << PIL_BITS)
    if y.shape[3] != w:
        y = torch.floor((y @ pil_bicubic_weights(y.shape[3], w).to(dev).T + half) / one).clamp_(0, 255)
    if y.shape[2] != h:
        y = torch.floor((pil_bicubic_weights(y.shape[2], h).to(dev) @ y + half) / one).clamp_(0, 255)
    return y.to(x.device, torch.float32)


def preprocess(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 [N, 3, size, size]: RGB, Pillow's bicubic resize, / 255, ImageNet mean / std
    (the ops of torchvision's ToTensor and Normalize, so the same bits as dgm-eval's transform)."""
    check_images(x)
    x = resize_pil_bicubic(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3], size)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x / 255 - mean) / std


@torch.inference_mode()
def dinov2_features(net: DINOv2ViT, x: torch.Tensor, batch_size: int = 64,
                    device: str | torch.device = "cpu") -> FeatureDict:
    """uint8 images [N, C, H, W] -> {"cls": [N, D]} float32 on CPU; float32 compute, bf16 autocast on CUDA.
    Each image is processed on its own (LayerNorm, no batch statistics): the batch size only changes speed."""
    device = torch.device(device)
    net = net.to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    out = []
    for s in range(0, len(x), batch_size):
        xb = preprocess(x[s:s + batch_size].to(device))   # resize on the device: uint8 transfers are 4x smaller
        with amp:
            out.append(net(xb).float().cpu())
    return {"cls": torch.cat(out) if out else torch.zeros(0, net.arch.embed_dim)}


# --------------------------------------------------------------------------------------------------------------
# Registration


@dataclass
class WeightsOptions:
    weights: str = ""   # path of the weights file ("" = $GANFORGE_DINOV2_WEIGHTS, else the cache)


def dinov2_space(ctx: SpaceContext, path: str | os.PathLike | None = None) -> Space:
    """The `dinov2` feature space with the weights of `resolve_weights(path, ctx.weights_dir)`."""
    net, proto = load_dinov2(path, ctx.weights_dir, ctx.device)
    return Space("dinov2", "cls", proto, lambda x: dinov2_features(net, x, ctx.batch_size, ctx.device))


def _check_data(data: Data) -> None:
    if data.kind != "image":
        raise GanforgeError(f"the DINOv2 features are for images, but {data.name!r} is {data.kind} data")
    check_images(data.x, f"the DINOv2 features of {data.name!r}")


def _only(values: dict[str, float], std: bool = False) -> float:
    """The (std) value of a one-value metric whatever `evaluate` names it (fid, kid, kid_std, ...)."""
    return next(v for k, v in values.items() if k.endswith("_std") == std)


def _fd_dinov2(inp: Inputs) -> tuple[dict[str, float], dict]:
    values, extra = _fid(inp)
    return {"fd_dinov2": _only(values)}, extra


def _kid_dinov2(inp: Inputs) -> tuple[dict[str, float], dict]:
    values, extra = _kid(inp)
    return {"kid_dinov2": _only(values), "kid_dinov2_std": _only(values, std=True)}, extra


SPACES.register("dinov2")(SpaceSpec(lambda real, ctx: dinov2_space(ctx, ctx.options.get("weights") or None),
                                    check=_check_data,
                                    doc=f"DINOv2 ViT CLS token (384-d for ViT-S/14); needs the weights file "
                                        f"(${WEIGHTS_ENV} or <cache>/weights/{WEIGHTS_FILE})"))
for _spec in (
    MetricSpec("fd_dinov2", "Frechet distance in DINOv2 features (dgm-eval FD_DINOv2): fd_dinov2",
               {"image": "dinov2"}, _fd_dinov2),
    MetricSpec("kid_dinov2", "kernel distance in DINOv2 features: kid_dinov2, kid_dinov2_std",
               {"image": "dinov2"}, _kid_dinov2),
    MetricSpec("pr_dinov2", "improved precision / recall (k=3) in DINOv2 features: precision, recall",
               {"image": "dinov2"}, _pr),
):
    METRICS.register(_spec.name, options=WeightsOptions)(_spec)
