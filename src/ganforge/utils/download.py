"""Verified downloads, shared by the dataset loaders and the FID Inception weights.

A download goes to a temporary `.part` file next to its destination, is checked against the official
checksum and only then renamed into place, so an interrupted, truncated or foreign download (a captive
portal's HTML page) never leaves a file that looks valid.
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

from ..errors import GanforgeError

_FULL_HEX = {"md5": 32, "sha1": 40, "sha256": 64}


def fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download `url` to the file `dest` (no checks; `download` verifies). Tests monkeypatch this."""
    req = urllib.request.Request(url, headers={"User-Agent": "ganforge"})
    with urllib.request.urlopen(req, timeout=timeout) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)


def file_digest(path: str | os.PathLike, algo: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split_checksum(checksum: str) -> tuple[str, str]:
    """"md5:abc..." -> ("md5", "abc..."). A digest shorter than the algorithm's is a prefix (torch.hub's
    convention of naming a file after the first 8 hex digits of its SHA-256)."""
    algo, _, hexd = checksum.partition(":")
    assert algo in _FULL_HEX and hexd and len(hexd) <= _FULL_HEX[algo], checksum
    return algo, hexd.lower()


def matches(digest: str, checksum: str) -> bool:
    _, want = split_checksum(checksum)
    return digest.lower().startswith(want)


def download(urls: list[str], dest: Path, checksum: str, what: str, fix: str = "") -> str:
    """Fetch `dest` from the first mirror that works and matches `checksum`; returns a status string.

    Raises GanforgeError naming the URLs, the destination and the manual fix (`fix`, or placing the file
    there yourself) when every mirror fails.
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
            if not got.startswith(want):
                tmp.unlink(missing_ok=True)
                problems.append(f"{url}: {algo} checksum mismatch (expected {want}, got {got}); the file was deleted")
                continue
            os.replace(tmp, dest)  # atomic: dest only ever holds a verified file
            return f"downloaded from {url}, {algo} verified"
    finally:
        tmp.unlink(missing_ok=True)
    raise GanforgeError(
        f"{what}: could not download {dest.name} into {dest.parent} ({'; '.join(problems)}); "
        + (fix or f"check the network and retry, or download it yourself and place it in {dest.parent}"))


def checksum_status(data: bytes, checksum: str | None) -> str:
    """Compare bytes already read with the official checksum, for a dataset's provenance (never fails)."""
    if not checksum:
        return "no reference checksum"
    algo, want = split_checksum(checksum)
    if hashlib.new(algo, data).hexdigest().startswith(want):
        return f"{algo} matches the official file"
    # Distribution packages (e.g. Debian's dataset-fashion-mnist) recompress the .gz files, so a different
    # digest does not mean different contents; the format checks still apply.
    return f"{algo} differs from the official file (a recompressed copy?); contents not verified"
