"""Helpers shared by the file-backed loaders (idx, cifar, folder): verified downloads and uint8 image resizing.

Downloads go to a temporary `.part` file next to the destination, are checked against the official checksum
and only then renamed into place, so an interrupted or corrupt download never leaves a file that looks valid.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import GanforgeError


def fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download `url` to the file `dest` (no checks; `download` verifies). Tests monkeypatch this."""
    req = urllib.request.Request(url, headers={"User-Agent": "ganforge"})
    with urllib.request.urlopen(req, timeout=timeout) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)


def file_digest(path: Path, algo: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_checksum(checksum: str) -> tuple[str, str]:
    """"md5:abc..." -> ("md5", "abc...")."""
    algo, _, hexd = checksum.partition(":")
    assert algo in ("md5", "sha1", "sha256") and hexd, checksum
    return algo, hexd.lower()


def download(urls: list[str], dest: Path, checksum: str, what: str) -> str:
    """Fetch `dest` from the first mirror that works and matches `checksum`; returns a status string.

    Raises GanforgeError (naming the URLs, the destination and the manual fix) when every mirror fails.
    """
    algo, want = split_checksum(checksum)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part-{os.getpid()}")
    problems: list[str] = []
    try:
        for url in urls:
            print(f"ganforge: downloading {url} -> {dest}", file=sys.stderr)  # can take minutes: say why
            try:
                fetch(url, tmp)
            except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError, ValueError) as e:
                problems.append(f"{url}: {e}")
                continue
            got = file_digest(tmp, algo)
            if got != want:
                tmp.unlink(missing_ok=True)
                problems.append(f"{url}: {algo} checksum mismatch (expected {want}, got {got}); the file was deleted")
                continue
            os.replace(tmp, dest)  # atomic: dest only ever holds a verified file
            return f"downloaded from {url}, {algo} verified"
    finally:
        tmp.unlink(missing_ok=True)
    raise GanforgeError(
        f"{what}: could not download {dest.name} into {dest.parent} ({'; '.join(problems)}); "
        f"check the network and retry, or download it yourself, place it in {dest.parent} "
        f"(or set data.path=DIR) and run again")


def checksum_status(data: bytes, checksum: str | None) -> str:
    """Compare bytes already read with the official checksum, for Data.info (never fails)."""
    if not checksum:
        return "no reference checksum"
    algo, want = split_checksum(checksum)
    if hashlib.new(algo, data).hexdigest() == want:
        return f"{algo} matches the official file"
    # Distribution packages (e.g. Debian's dataset-fashion-mnist) recompress the .gz files, so a different
    # digest does not mean different contents; the IDX header and size checks still apply.
    return f"{algo} differs from the official file (a recompressed copy?); contents not verified"


def target_size(cfg, native: tuple[int, int], what: str) -> tuple[int, int]:
    """(H, W) requested by data.resolution / data.width for a dataset of fixed size `native` (0 = native)."""
    if cfg.resolution < 0 or cfg.width < 0:
        raise GanforgeError(f"data.resolution/data.width: must be >= 0, got {cfg.resolution}/{cfg.width}")
    if not cfg.resolution:
        if cfg.width:
            raise GanforgeError(f"data.width: {what}: set data.resolution (the height) as well, or neither")
        return native
    h, w = cfg.resolution, cfg.width or cfg.resolution
    if h * native[1] != w * native[0]:
        raise GanforgeError(
            f"data.width: {what} images are {native[0]}x{native[1]}; a {h}x{w} target would distort them; "
            f"set only data.resolution (or use the `folder` loader, which crops)")
    return h, w


def resize_uint8(x: torch.Tensor, size: tuple[int, int], chunk: int = 2048) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, h, w] with antialiased bilinear interpolation, in chunks to bound memory."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = torch.empty((x.shape[0], x.shape[1], *size), dtype=torch.uint8)
    for i in range(0, x.shape[0], chunk):
        y = F.interpolate(x[i:i + chunk].float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        out[i:i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    return out


def luma_uint8(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> uint8 [N, 1, H, W] with ITU-R 601 weights, rounded exactly as PIL's convert("L")."""
    r, g, b = (rgb[:, i:i + 1].to(torch.int32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)
