"""Images as uint8 numpy arrays: decoding files, ONE resampling filter, channel conversion, layouts, grids.

Every loader that changes an image's size goes through `resize` / `fit`, so `data.resolution` resamples the
same way for every dataset: Lanczos (PIL), as StyleGAN2-ADA's dataset_tool; PIL premultiplies alpha for RGBA.

Channel rules (`convert_channels`): grey -> RGB repeats the grey level; alpha is removed by compositing on
white; RGB -> grey uses ITU-R 601 luma, rounded exactly as PIL's convert("L"); missing alpha is opaque.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import GanforgeError
from .files import atomic_write

RESAMPLE = Image.LANCZOS
RESAMPLE_NAME = "Lanczos"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
GREY_MODES = ("1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_PIL_MODE = {1: "L", 3: "RGB", 4: "RGBA"}


# ---------------------------------------------------------------------------------------------------
# decoding


def natural_kind(im: Image.Image) -> str:
    """"L", "RGB" or "RGBA": what an image holds, whatever its storage mode."""
    if im.mode in GREY_MODES:
        return "L"
    if im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info):
        return "RGBA"
    return "RGB"


def _to_kind(im: Image.Image, kind: str) -> Image.Image:
    if kind == "L" and im.mode.startswith("I"):
        # 16-bit grey (PNG): PIL's convert("L") would clip at 255, so scale 0..65535 -> 0..255 instead.
        a = np.asarray(im).astype(np.int64).clip(0, 65535)
        return Image.fromarray(((a * 255 + 32767) // 65535).astype(np.uint8), "L")
    if kind == "L" and im.mode == "F":
        return Image.fromarray(np.asarray(im).clip(0, 255).round().astype(np.uint8), "L")
    return im if im.mode == kind else im.convert(kind)


def decode(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode one image file (EXIF orientation applied) as L, RGB or RGBA.
    Any exception means an unreadable file."""
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im) or im
        return _to_kind(im, natural_kind(im))


def read_image(path: str | os.PathLike, size: tuple[int, int] | None, crop: str = "center", seed: int = 0,
               index: int = 0) -> tuple[np.ndarray, str]:
    """One image file -> (uint8 [H, W, 1|3|4], its kind "L" | "RGB" | "RGBA"), scaled and cropped to size (H, W)
    unless size is None (see `fit`). Any exception means a corrupt or unsupported file."""
    im = decode(path)
    if size is not None:
        im = fit(im, size, crop, seed, index)
    a = np.asarray(im, dtype=np.uint8)
    return (a[..., None] if a.ndim == 2 else a), im.mode


def list_images(root: Path, unreadable: list[str] | None = None) -> list[tuple[str, int, int]]:
    """(relative POSIX path, size in bytes, mtime in ns) of every image under `root`, sorted by path.
    Hidden files and folders (".name") are skipped; links to folders are not followed (no loops). An entry that
    cannot be read (a dangling link, a link loop) is appended to `unreadable` when a list is given, else it is
    a GanforgeError naming it."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .git, .ipynb_checkpoints, ...
        for fn in filenames:
            if fn.startswith(".") or not fn.lower().endswith(IMAGE_EXTS):
                continue
            p = Path(dirpath, fn)
            try:
                st = p.stat()  # follows a link to its file
            except OSError as e:
                rel = f"{p.relative_to(root).as_posix()} ({e.strerror or type(e).__name__})"
                if unreadable is None:
                    raise GanforgeError(f"{p}: cannot read it ({e.strerror or e}: a dangling or looping link?); "
                                        "remove it, or set --set data.skip_corrupt=true to skip such files") from None
                unreadable.append(rel)
                continue
            out.append((p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    out.sort()
    return out


# ---------------------------------------------------------------------------------------------------
# geometry: the one resampling filter


def fit(im: Image.Image, size: tuple[int, int], crop: str = "center", seed: int = 0, index: int = 0) -> Image.Image:
    """Scale `im` to just cover size (H, W), then crop it to exactly H x W: in the centre, or at a position drawn
    from (seed, index) when crop is "random" (the same crop every run, independent of thread order)."""
    (h, w), (iw, ih) = size, im.size
    s = max(w / iw, h / ih)
    nw, nh = max(w, round(iw * s)), max(h, round(ih * s))
    if (nw, nh) != (iw, ih):
        im = im.resize((nw, nh), RESAMPLE)
    if crop == "random":
        rng = np.random.default_rng([seed, index])
        left, top = int(rng.integers(0, nw - w + 1)), int(rng.integers(0, nh - h + 1))
    else:
        left, top = (nw - w) // 2, (nh - h) // 2
    return im.crop((left, top, left + w, top + h)) if (nw, nh) != (w, h) else im


def resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 images [N, C, H, W] (C = 1, 3 or 4) -> uint8 [N, C, h, w] with the one resampling filter."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    n, c = x.shape[:2]
    h, w = size
    out = np.empty((n, c, h, w), np.uint8)
    for i in range(n):
        im = Image.fromarray(x[i, 0] if c == 1 else np.ascontiguousarray(x[i].transpose(1, 2, 0)), _PIL_MODE[c])
        a = np.asarray(im.resize((w, h), RESAMPLE))
        out[i] = a[None] if c == 1 else a.transpose(2, 0, 1)
    return out


# ---------------------------------------------------------------------------------------------------
# channels and layout


def luma(rgb: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] -> uint8 [..., 1]: ITU-R 601 luma, rounded exactly as PIL's convert("L")."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]


def convert_channels(a: np.ndarray, c: int) -> np.ndarray:
    """uint8 [..., 1|3|4] (channels last) -> uint8 [..., c] with the rules in the module docstring."""
    have = a.shape[-1]
    if have == c:
        return a
    if have == 4:  # composite on white: rgb * alpha + 255 * (1 - alpha)
        alpha = a[..., 3:].astype(np.uint32)
        a = ((a[..., :3].astype(np.uint32) * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
        have = 3
    if c == 1:
        return a if have == 1 else luma(a)
    rgb = np.repeat(a, 3, axis=-1) if have == 1 else a
    if c == 3:
        return rgb
    return np.concatenate([rgb, np.full(rgb.shape[:-1] + (1,), 255, np.uint8)], axis=-1)


def to_hwc(x):
    """[N, C, H, W] -> [N, H, W, C] (numpy array or torch tensor): stored layout -> what users get."""
    return x.transpose(0, 2, 3, 1) if isinstance(x, np.ndarray) else x.permute(0, 2, 3, 1)


def to_chw(x):
    """[N, H, W, C] -> [N, C, H, W] (numpy array or torch tensor): what users give -> stored layout."""
    return x.transpose(0, 3, 1, 2) if isinstance(x, np.ndarray) else x.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------------
# grids


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 2) -> Image.Image:
    """uint8 [N, H, W, C] -> one PIL image with the samples in rows (C = 1, 3 or 4), black padding."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    cols = cols or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / cols))
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, cols)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = images[i]
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas, mode=_PIL_MODE[c])


def save_image_grid(images: np.ndarray, path: str | os.PathLike, scale: int = 0, cols: int | None = None) -> Path:
    """A grid of uint8 [N, H, W, C] images as a PNG, written atomically; small images are upscaled (nearest)
    so that the grid is legible (scale 0 = automatic)."""
    img = image_grid(images, cols)
    if scale == 0:
        scale = max(1, 256 // max(np.asarray(images).shape[1], 1) // 2)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return atomic_write(path, lambda f: img.save(f, format="PNG"))
