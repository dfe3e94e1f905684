"""`folder`: every PNG / JPEG / WebP / BMP image under `data.path`, recursively, in sorted path order.

Labels: when every image lies in a first-level subfolder (`root/<class>/.../img.png`), the subfolder names,
sorted, are the classes; otherwise the set has no labels. Hidden files and folders (".name") are ignored.

Geometry: with `data.resolution` H (and `data.width` W, default H) each image is scaled (the loaders' one
filter, Lanczos, as StyleGAN2-ADA's dataset_tool) so that it just covers H x W, then cropped to H x W: in the
centre, or at a position drawn from (`data.seed`, image index) when `data.crop` is "random" (the same crop every
run).
With `data.resolution` 0 images keep their size, and all must be the same size. JPEG EXIF orientation is applied.

Channels: each image is decoded as grey (L, 1-bit, 16-bit and float grey; 16-bit scaled to 8 bits), RGB
(RGB, palette, CMYK, YCbCr, ...) or RGBA (anything with alpha: RGBA, LA, PA, palette with transparency).
`data.channels` 1, 3 or 4 converts every image to that (ganforge.utils.images.convert_channels: grey -> RGB
repeats the grey level; alpha is composited on white; RGB -> grey is ITU-R 601 luma; missing alpha is opaque).
`data.channels` 0 picks: 1 if every image is grey, 4 if every image has alpha, else 3 (no colour is lost).

The result is cached in `cache_dir(data.cache_dir)/folder/<key>.npz`, keyed by a hash of the sorted relative
paths, sizes and modification times of the files and of every preprocessing option, so the next run with the
same files and options loads at once without decoding any image.

Data larger than memory (`data.storage` disk, or auto when the decoded images would take more than
`data.memory_mb`, by default a quarter of the RAM): the cache is a directory `<key>/` in the on-disk format of
data/disk.py instead, written row by row (memory: one chunk of images), and training reads it per minibatch.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import GanforgeError
from ..utils.files import atomic_write
from ..utils.images import IMAGE_EXTS, RESAMPLE_NAME, convert_channels, list_images, natural_kind, read_image
from .base import DATASETS, Data, cache_dir, requested_size
from .disk import DiskWriter, memory_limit_bytes, read_disk

CACHE_VERSION = 1  # bump when the preprocessing changes, so old caches are not reused


def _cache_key(listing: list[tuple[str, int, int]], options: dict) -> str:
    blob = json.dumps(dict(version=CACHE_VERSION, files=listing, options=options), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _load_cache(path: Path) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """The cached arrays, or None when there is no cache or it is damaged (then it is rebuilt, never trusted)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            x, labels, meta = z["x"], z["labels"], json.loads(str(z["meta"]))
        ok = (x.dtype == np.uint8 and x.ndim == 4 and x.shape[0] > 0 and x.shape[1] in (1, 3, 4)
              and labels.ndim == 1 and labels.shape[0] in (0, x.shape[0]) and isinstance(meta, dict)
              and {"class_names", "n_read", "skipped", "preprocessing"} <= set(meta))
        if not ok:
            raise ValueError(f"unexpected contents (x {x.dtype} {list(x.shape)}, labels {list(labels.shape)})")
        return x, labels, meta
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        warnings.warn(f"folder: ignoring the damaged cache file {path} ({e}); rebuilding it", stacklevel=3)
        return None


def _save_cache(path: Path, x: np.ndarray, labels: np.ndarray, meta: dict) -> None:
    try:
        atomic_write(path, lambda f: np.savez(f, x=x, labels=labels, meta=np.array(json.dumps(meta))))
    except OSError as e:
        warnings.warn(f"folder: could not write the cache {path} ({e}); the next run will decode again",
                      stacklevel=3)


def _skip_warning(root: Path, skipped: list[str]) -> None:
    warnings.warn(f"folder: skipped {len(skipped)} unreadable image(s) under {root} (data.skip_corrupt=true); "
                  f"first: {skipped[0]}", stacklevel=3)


@DATASETS.register("folder", doc="your images: every PNG/JPEG/WebP/BMP under data.path (labels from subfolders)")
def folder(cfg) -> Data:
    """Images under data.path -> uint8 [N, C, H, W] (+ labels from first-level subfolders)."""
    if not cfg.path:
        raise GanforgeError("data.path: the folder dataset needs a directory of images; "
                            "set --set data.path=DIR")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise GanforgeError(f"data.path: {root} {'is not a directory' if root.exists() else 'does not exist'}; "
                            f"point it at a folder of {'/'.join(e[1:] for e in IMAGE_EXTS)} images")
    size = requested_size(cfg)  # (H, W) or None: native

    unreadable: list[str] = []
    listing = list_images(root, unreadable if cfg.skip_corrupt else None)
    if unreadable:  # links to nowhere or in a loop: skipped (data.skip_corrupt), as unreadable images are
        _skip_warning(root, unreadable)
    if not listing:
        raise GanforgeError(f"data.path: no images (.png, .jpg, .jpeg, .webp, .bmp) found under {root}; "
                            f"check the path")
    options = dict(size=size, channels=cfg.channels, crop=cfg.crop if size else None,
                   seed=cfg.seed if size and cfg.crop == "random" else None,
                   max_items=cfg.max_items, skip_corrupt=cfg.skip_corrupt)
    key = _cache_key(listing, options)
    cache_file = cache_dir(cfg.cache_dir) / "folder" / f"{key}.npz"
    disk_dir = cache_dir(cfg.cache_dir) / "folder" / key
    storage = cfg.storage
    if storage == "auto":
        storage = "disk" if (disk_dir / "meta.json").is_file() else "memory" if cache_file.is_file() else \
            "disk" if _estimate_bytes(root, listing, size, cfg) > memory_limit_bytes(cfg.memory_mb) else "memory"
    cached = read_disk(disk_dir) if storage == "disk" else _load_cache(cache_file)
    if cached is not None:
        x, labels, meta = cached
        if meta["skipped"]:
            _skip_warning(root, meta["skipped"])
        cache_status = f"loaded {disk_dir if storage == 'disk' else cache_file}"
    elif storage == "disk":
        _build_disk(root, listing, size, cfg, disk_dir)
        x, labels, meta = read_disk(disk_dir)
        cache_status = f"built and saved {disk_dir} (on disk: read per minibatch)"
    else:
        x, labels, meta = _build(root, listing, size, cfg)
        _save_cache(cache_file, x, labels, meta)
        cache_status = f"built and saved {cache_file}"
    if storage == "memory":
        x = torch.from_numpy(x)
    return Data(x=x, kind="image", name="folder",
                labels=torch.from_numpy(labels) if meta["class_names"] else None,
                class_names=meta["class_names"] or None,
                info=dict(source=str(root), files_found=len(listing), files_read=meta["n_read"],
                          skipped=len(meta["skipped"]) + len(unreadable),
                          skipped_files=(unreadable + meta["skipped"])[:20],
                          preprocessing=meta["preprocessing"], cache=cache_status,
                          max_items=cfg.max_items or None, storage=storage,
                          disk_file=str(disk_dir / "images.u8") if storage == "disk" else None))


def _classes(rel: list[str]) -> tuple[list[str], dict[str, int]]:
    """Class names and indices: the first-level subfolders, when every image sits in one; else none."""
    names = sorted({r.split("/", 1)[0] for r in rel}) if all("/" in r for r in rel) else []
    return names, {c: i for i, c in enumerate(names)}


def _decoder(root: Path, rel: list[str], size: tuple[int, int] | None, cfg):
    """i -> (uint8 [H, W, 1|3|4], kind), or (None, why) for a file that cannot be decoded."""
    def work(i: int) -> tuple[np.ndarray | None, str]:
        try:
            return read_image(root / rel[i], size, cfg.crop, cfg.seed, i)
        except Exception as e:  # noqa: BLE001  any decoder failure means a corrupt or unsupported file
            return None, f"{type(e).__name__}: {e}"
    return work


def _unreadable(path: Path, note: str) -> GanforgeError:
    return GanforgeError(f"{path}: cannot read this image ({note}); delete or replace it, or set "
                         "--set data.skip_corrupt=true to skip unreadable files")


def _other_size(path: Path, hw: tuple[int, ...], first: str, first_hw: tuple[int, ...]) -> GanforgeError:
    return GanforgeError(f"{path}: is {hw[1]}x{hw[0]} (WxH) but {first} is {first_hw[1]}x{first_hw[0]}; with "
                         "data.resolution=0 all images must share one size; set data.resolution (and data.width) "
                         "to resize and crop them")


def _none_read(root: Path, n: int, skipped: list[str]) -> GanforgeError:
    return GanforgeError(f"data.path: none of the {n} images under {root} could be read (first: {skipped[0]}); "
                         "check the files")


def _preprocessing(modes: set[str], c: int, size: tuple[int, int] | None, cfg) -> list[str]:
    out = [f"decoded as {'/'.join(sorted(modes))}, converted to {c} channel(s)"
           + (" (alpha composited on white)" if "RGBA" in modes and c < 4 else "")]
    if size is not None:
        out.append(f"scaled to cover {size[0]}x{size[1]} ({RESAMPLE_NAME}), {cfg.crop} crop"
                   + (f" (seed {cfg.seed})" if cfg.crop == "random" else ""))
    return out


def _build(root: Path, listing: list[tuple[str, int, int]], size: tuple[int, int] | None,
           cfg) -> tuple[np.ndarray, np.ndarray, dict]:
    rel = [r for r, _, _ in listing]
    class_names, class_of = _classes(rel)
    work = _decoder(root, rel, size, cfg)
    limit = cfg.max_items or len(rel)
    arrays: list[np.ndarray | None] = []
    kept: list[int] = []
    skipped: list[str] = []
    modes: set[str] = set()
    # PIL releases the GIL while decoding and resizing; a few threads are enough and spare shared machines.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        start = 0
        while start < len(rel) and len(arrays) < limit:
            # chunks sized to what is still needed, so a small max_items decodes few files
            idx = range(start, min(start + max(8, min(256, limit - len(arrays))), len(rel)))
            start = idx.stop
            for i, (a, note) in zip(idx, pool.map(work, idx), strict=True):
                if len(arrays) >= limit:
                    break
                if a is None:
                    if not cfg.skip_corrupt:
                        raise _unreadable(root / rel[i], note)
                    skipped.append(f"{rel[i]} ({note})")
                    continue
                if arrays and a.shape[:2] != arrays[0].shape[:2]:  # type: ignore[union-attr]
                    raise _other_size(root / rel[i], a.shape[:2], rel[kept[0]], arrays[0].shape[:2])  # type: ignore
                arrays.append(a)
                kept.append(i)
                modes.add(note)
    if not arrays:
        raise _none_read(root, len(rel), skipped)
    if skipped:
        _skip_warning(root, skipped)

    c = cfg.channels or (1 if modes == {"L"} else 4 if modes == {"RGBA"} else 3)
    h, w = arrays[0].shape[:2]  # type: ignore[union-attr]
    x = np.empty((len(arrays), c, h, w), np.uint8)  # [N, C, H, W]
    for j, a in enumerate(arrays):
        x[j] = convert_channels(a, c).transpose(2, 0, 1)
        arrays[j] = None  # free as we go: peak memory stays near one copy of the set
    labels = np.array([class_of[rel[i].split("/", 1)[0]] for i in kept] if class_names else [], np.int64)
    meta = dict(class_names=class_names, n_read=len(kept) + len(skipped), skipped=skipped,
                preprocessing=_preprocessing(modes, c, size, cfg))
    return x, labels, meta


def _estimate_bytes(root: Path, listing: list[tuple[str, int, int]], size: tuple[int, int] | None, cfg) -> int:
    """Decoded size of the set (from the first image's header when images keep their size; 3 channels unless
    data.channels says otherwise)."""
    n = min(len(listing), cfg.max_items or len(listing))
    if size is None:
        try:
            with Image.open(root / listing[0][0]) as im:
                size = im.size[::-1]
        except Exception:  # noqa: BLE001  the loader reports the file
            return 0
    return n * (cfg.channels or 3) * size[0] * size[1]


def _channels_from_headers(root: Path, rel: list[str]) -> int:
    """data.channels 0 for the on-disk path, decided before decoding: 1 if every image is grey, 4 if every one
    has alpha, else 3 (the in-memory path's rule, from the headers; unreadable ones are left to the decoder)."""
    kinds = set()
    for r in rel:
        try:
            with Image.open(root / r) as im:
                kinds.add(natural_kind(im))
        except Exception:  # noqa: BLE001
            continue
        if len(kinds) > 1 and "RGB" in kinds:
            break
    return 1 if kinds == {"L"} else 4 if kinds == {"RGBA"} else 3


def _build_disk(root: Path, listing: list[tuple[str, int, int]], size: tuple[int, int] | None, cfg,
                directory: Path) -> None:
    """Decode, convert and write every image to the on-disk format, a chunk at a time."""
    rel = [r for r, _, _ in listing][: cfg.max_items or None]
    class_names, class_of = _classes(rel)
    c = cfg.channels or _channels_from_headers(root, rel)
    work = _decoder(root, rel, size, cfg)

    writer, labels, skipped, modes, first = None, [], [], set(), None
    try:
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(rel), 256):
                idx = range(start, min(start + 256, len(rel)))
                for i, (a, note) in zip(idx, pool.map(work, idx), strict=True):
                    if a is None:
                        if not cfg.skip_corrupt:
                            raise _unreadable(root / rel[i], note)
                        skipped.append(f"{rel[i]} ({note})")
                        continue
                    if first is None:
                        first = rel[i]
                        writer = DiskWriter(directory, (c, a.shape[0], a.shape[1]), len(rel),
                                            f"preprocessing {len(rel)} images to disk")
                    elif a.shape[:2] != writer.shape[1:]:
                        raise _other_size(root / rel[i], a.shape[:2], first, writer.shape[1:])
                    writer.add(convert_channels(a, c).transpose(2, 0, 1))
                    modes.add(note)
                    if class_names:
                        labels.append(class_of[rel[i].split("/", 1)[0]])
                if writer is not None:
                    writer.advance(len(idx))
        if writer is None:
            raise _none_read(root, len(rel), skipped)
        if skipped:
            _skip_warning(root, skipped)
        meta = dict(class_names=class_names, n_read=writer.n + len(skipped), skipped=skipped,
                    preprocessing=_preprocessing(modes, c, size, cfg))
        writer.finish(np.array(labels, np.int64), meta)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
