"""The "FID Inception" network: TF `inception-2015-12-05` ported to PyTorch (reference/metrics.md §1.2).

Parameter names follow torchvision's `Inception3`, so the pytorch-fid file `pt_inception-2015-12-05-6726825d.pth`
loads with `strict=True`. Differences from torchvision (mseitzer/pytorch-fid `FIDInception*`, torch-fidelity
`feature_extractor_inceptionv3.py`): fc has 1008 outputs, no aux head, no `transform_input`; the pool branch of
Mixed_5b-5d, 6b-6e and 7b averages without the padded zeros (`count_include_pad=False`, as TF), and Mixed_7c
max-pools there (a quirk of the TF graph).

Preprocessing (TF-legacy, §1.4): uint8 -> float32 -> TF1 `ResizeBilinear` to 299x299 (src = dst * in / out,
align_corners=False, half_pixel_centers=False, no antialias) -> (x - 128) / 128. Grey images are repeated to 3
channels (StyleGAN2-ADA); RGBA drops alpha.

Nothing here touches the network or the disk on import; weights are found by `resolve_weights`.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.base import cache_dir
from ..errors import GanforgeError
from ..utils import download

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub convention: the file name ends with the first 8 hex of its SHA-256
WEIGHTS_ENV = "GANFORGE_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
RESIZE = "tf_legacy"

# --------------------------------------------------------------------------------------------------------------
# Network


class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3, as TF) -> ReLU."""

    def __init__(self, cin: int, cout: int, **kw) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TF's average pool ignores the zero padding in the divisor
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):  # Mixed_6a: unchanged from torchvision
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for m in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = m(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):  # Mixed_7a: unchanged from torchvision
    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (`max_pool=False`, TF average pool) and Mixed_7c (`max_pool=True`, the TF graph's max pool)."""

    def __init__(self, cin: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """FID Inception on preprocessed input [N, 3, 299, 299] -> pool3 [N, 2048], logits(_unbiased) [N, 1008]."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)  # the TF graph has 1008 classes

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))   # [N, 64, 147, 147]
        x = F.max_pool2d(x, kernel_size=3, stride=2)                         # [N, 64, 73, 73]
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))                        # [N, 192, 71, 71]
        x = F.max_pool2d(x, kernel_size=3, stride=2)                         # [N, 192, 35, 35]
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, "Mixed_" + name)(x)                            # ... -> [N, 2048, 8, 8]
        pool3 = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)                # [N, 2048]
        # IS uses logits without the fc bias, as the original TF code (openai/improved-gan; torch-fidelity)
        logits_unbiased = pool3.mm(self.fc.weight.T)                         # [N, 1008]
        logits = logits_unbiased + self.fc.bias.unsqueeze(0)
        return dict(pool3=pool3, logits_unbiased=logits_unbiased, logits=logits)


# --------------------------------------------------------------------------------------------------------------
# Preprocessing


def _tf1_axis(n_in: int, n_out: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # TF1 legacy scaler in float32: src = dst * (in / out); lo = floor(src); hi = min(lo + 1, in - 1)
    src = torch.arange(n_out, dtype=torch.float32, device=device) * torch.tensor(n_in / n_out, dtype=torch.float32)
    lo = src.long()
    hi = (lo + 1).clamp_max(n_in - 1)
    return lo, hi, src - lo.float()


def resize_tf_legacy(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """TF1 `ResizeBilinear(align_corners=False)` of float32 [N, C, H, W] to [N, C, size, size] (x then y lerp)."""
    lo, hi, w = _tf1_axis(x.shape[3], size, x.device)
    left, right = x.index_select(3, lo), x.index_select(3, hi)
    x = left + (right - left) * w.view(1, 1, 1, -1)                        # [N, C, H, size]
    lo, hi, w = _tf1_axis(x.shape[2], size, x.device)
    top, bottom = x.index_select(2, lo), x.index_select(2, hi)
    return top + (bottom - top) * w.view(1, 1, -1, 1)                      # [N, C, size, size]


def to_rgb(x: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] with C in {1, 3, 4} -> [N, 3, H, W]: grey repeated, alpha dropped."""
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3, 4):
        raise GanforgeError(
            f"the Inception network needs uint8 images [N, C, H, W] with C = 1, 3 or 4, got {x.dtype} {tuple(x.shape)}"
        )
    if x.shape[1] == 1:
        return x.expand(-1, 3, -1, -1)
    return x[:, :3]


def preprocess(x: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] -> the network's input float32 [N, 3, 299, 299] in [-1, 1)."""
    x = resize_tf_legacy(to_rgb(x).float())
    return (x - 128) / 128  # the TF graph multiplies by 0.0078125 = 1/128: same bits


# --------------------------------------------------------------------------------------------------------------
# Weights


def _missing_message(where: Path) -> str:
    return (
        f"FID Inception weights not found and could not be downloaded; put {WEIGHTS_FILE} "
        f"(from {WEIGHTS_URL}) at {where}, or set ${WEIGHTS_ENV} to its path"
    )


def resolve_weights(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                    download_ok: bool = True) -> Path:
    """Where the FID Inception weights are: `path`, else $GANFORGE_INCEPTION_WEIGHTS, else the cache
    (`cache_dir()/weights/pt_inception-2015-12-05-6726825d.pth`), downloaded there (hash-checked) when online.
    """
    for given, origin in ((path, "the weights path"), (os.environ.get(WEIGHTS_ENV), f"${WEIGHTS_ENV}")):
        if given:
            p = Path(given).expanduser()
            if not p.is_file():
                raise GanforgeError(f"{origin} {str(p)!r} is not a file; expected {WEIGHTS_FILE} (from {WEIGHTS_URL})")
            return p
    dst = Path(cache) if cache else cache_dir()
    dst = dst / "weights" / WEIGHTS_FILE
    if dst.is_file():
        return dst
    if not download_ok:
        raise GanforgeError(_missing_message(dst))
    download.download([WEIGHTS_URL], dst, f"sha256:{WEIGHTS_SHA256_PREFIX}", "FID Inception weights not found",
                      fix=f"put {WEIGHTS_FILE} (from {WEIGHTS_URL}) at {dst}, or set ${WEIGHTS_ENV} to its path")
    return dst


def weights_available(cache: str | os.PathLike | None = None) -> bool:
    """True when the weights can be found without a download ($GANFORGE_INCEPTION_WEIGHTS or the cache file)."""
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser().is_file()
    return ((Path(cache) if cache else cache_dir()) / "weights" / WEIGHTS_FILE).is_file()


_SHA_MEMO: dict[tuple[str, int, int], str] = {}


def weights_sha256(path: Path) -> str:
    """SHA-256 of a weights file, memoised on (path, size, mtime): hashing 91 MiB at every tick would add up."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_MEMO:
        _SHA_MEMO[key] = download.file_digest(path, "sha256")
    return _SHA_MEMO[key]


def load_inception(path: str | os.PathLike | None = None, cache: str | os.PathLike | None = None,
                   download_ok: bool = True) -> tuple[FIDInceptionV3, dict]:
    """(network in eval mode on CPU, protocol dict) with the weights from `resolve_weights`."""
    p = resolve_weights(path, cache, download_ok)
    sha = weights_sha256(p)
    if p.name == WEIGHTS_FILE and not sha.startswith(WEIGHTS_SHA256_PREFIX):
        # a corrupted or foreign file under the official name would silently give wrong numbers
        raise GanforgeError(f"{p} has SHA-256 {sha[:16]}..., not {WEIGHTS_SHA256_PREFIX}...; delete it or replace it "
                            f"with the genuine file from {WEIGHTS_URL}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise GanforgeError(f"cannot read Inception weights {p}: {type(e).__name__}: {e}") from None
    net = FIDInceptionV3()
    load_state(net, state, str(p))
    protocol = dict(
        features="FID Inception (TF inception-2015-12-05) pool3, 2048-d",
        weights=p.name, weights_sha256=sha, weights_official=sha.startswith(WEIGHTS_SHA256_PREFIX),
        resize="tf_legacy: TF1 ResizeBilinear to 299x299 (align_corners=False, half_pixel_centers=False, no antialias)",
        normalize="(x - 128) / 128", channels="grey repeated to RGB, alpha dropped", dtype="float32",
    )
    return net, protocol


def load_state(net: nn.Module, state: object, origin: str) -> None:
    """Load a torchvision-named state_dict with strict=True; files without `num_batches_tracked` are accepted."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GanforgeError(f"{origin} is not a state_dict of tensors (expected {WEIGHTS_FILE})")
    state = dict(state)
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked"):
            state.setdefault(k, v)  # the converted TF weights carry none; unused in eval mode
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0:2]
        raise GanforgeError(f"{origin} does not hold FID Inception weights: {' '.join(first)}") from None
    net.eval().requires_grad_(False)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Reference-grade extraction: TF32 convs/matmuls change pool3 by ~1e-3 relative (PyTorch enables cuDNN TF32)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@torch.inference_mode()
def inception_features(net: FIDInceptionV3, x: torch.Tensor, batch_size: int = 64,
                       device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """uint8 images [N, C, H, W] -> dict(pool3 [N, 2048], logits_unbiased [N, 1008]) float32 on CPU.

    Each image is processed independently (eval-mode BN), so the batch size only changes speed.
    """
    device = torch.device(device)
    net = net.to(device)
    out: dict[str, list[torch.Tensor]] = {"pool3": [], "logits_unbiased": []}
    with no_tf32() if device.type == "cuda" else contextlib.nullcontext():
        for s in range(0, len(x), batch_size):
            f = net(preprocess(x[s:s + batch_size].to(device)))  # resize on device: uint8 transfers are 4x smaller
            for k in out:
                out[k].append(f[k].float().cpu())
    return {k: torch.cat(v) if v else torch.zeros(0, 2048 if k == "pool3" else 1008) for k, v in out.items()}
