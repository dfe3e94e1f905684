"""The MNIST family in IDX format: `mnist`, `fashion` (Fashion-MNIST), `kmnist` (Kuzushiji-MNIST), `emnist`.

IDX (LeCun et al., http://yann.lecun.com/exdb/mnist/): bytes 0-1 are zero, byte 2 is the element type
(0x08 = uint8), byte 3 the number of dimensions; then one big-endian uint32 per dimension; then the data,
row-major. Files may be plain or gzip-compressed (`.gz`).

Where the files are looked for, in order:
  1. `data.path` (a directory; when set, nowhere else is searched and nothing is downloaded),
  2. the cache `cache_dir(data.cache_dir)/<name>/`,
  3. system copies: Debian/Ubuntu's `dataset-fashion-mnist` installs `/usr/share/datasets/fashion-mnist/`,
  4. a download of the official files into the cache (when `data.download` is true), checked against the
     official MD5 (the same digests torchvision pins).
EMNIST (`data.variant`: balanced (default), byclass, bymerge, digits, letters, mnist) ships as one zip,
`gzip.zip`, holding `gzip/emnist-<variant>-{train,test}-{images-idx3,labels-idx1}-ubyte.gz`; members are read
straight from the zip, or from those files if unpacked. EMNIST images are stored transposed and are
transposed back here; `letters` labels (1..26 in the files) are shifted to 0..25.
"""
from __future__ import annotations

import functools
import gzip
import math
import string
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import GanforgeError
from ..utils import download, images
from .base import DATASETS, Data, cache_dir, target_size

# IDX element type code -> big-endian numpy dtype
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

SPLIT_FILES = {  # split -> (images stem, labels stem), MNIST naming
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxSet:
    title: str
    mirrors: tuple[str, ...]            # base URLs; a file's URL is mirror + stem + ".gz"
    checksums: dict[str, str]           # official .gz file name -> "md5:<hex>"
    classes: tuple[str, ...]
    system_dirs: tuple[str, ...] = ()   # read-only copies installed by distribution packages
    hint: str = ""                      # extra fix suggested when nothing is found
    variants: dict[str, tuple[str, ...]] = field(default_factory=dict)  # EMNIST: variant -> class names


_DIGITS = tuple(string.digits)
# EMNIST class orders as in the EMNIST mapping files (Cohen et al. 2017): digits, upper case, lower case;
# bymerge/balanced merge the 15 lower-case letters that look like their capitals.
_EMNIST_ALL = tuple(sorted(string.digits + string.ascii_letters))
_EMNIST_MERGED = tuple(c for c in _EMNIST_ALL if c not in "cijklmopsuvwxyz")

IDX_SETS: dict[str, IdxSet] = {
    "mnist": IdxSet(
        title="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        checksums={"train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
                   "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
                   "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
                   "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c"},
        classes=_DIGITS),
    "fashion": IdxSet(
        title="Fashion-MNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"),
        checksums={"train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                   "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
                   "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
                   "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310"},
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        hint="or install the Debian/Ubuntu package (`apt-get install dataset-fashion-mnist`)"),
    "kmnist": IdxSet(
        title="Kuzushiji-MNIST",
        mirrors=("https://codh.rois.ac.jp/kmnist/dataset/kmnist/", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
        checksums={"train-images-idx3-ubyte.gz": "md5:bdb82020997e1d708af4cf47b453dcf7",
                   "train-labels-idx1-ubyte.gz": "md5:e144d726b3acfaa3e44228e80efcd344",
                   "t10k-images-idx3-ubyte.gz": "md5:5c965bf0a639b31b8f53240b1b52f4d7",
                   "t10k-labels-idx1-ubyte.gz": "md5:7320c461ea6c1c855c0b718fb2a4b134"},
        # romanised hiragana of kmnist_classmap.csv: お き す つ な は ま や れ を
        classes=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
    "emnist": IdxSet(
        title="EMNIST",
        mirrors=("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",),  # the whole archive (~536 MB)
        checksums={"gzip.zip": "md5:58c8d27c78d21e728a6bc7b3cc06412e"},
        classes=(),
        variants={"balanced": _EMNIST_MERGED, "bymerge": _EMNIST_MERGED, "byclass": _EMNIST_ALL,
                  "digits": _DIGITS, "mnist": _DIGITS, "letters": tuple(string.ascii_lowercase)}),
}
EMNIST_ZIP = "gzip.zip"


# ---------------------------------------------------------------------------------------------------
# IDX parsing


def parse_idx(raw: bytes, where: str) -> np.ndarray:
    """Decompressed IDX bytes -> numpy array (native byte order); GanforgeError naming `where` if malformed."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise GanforgeError(
            f"{where}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'}; expected 0000 08 0N "
            f"for MNIST-style files); check the file name or download it again")
    ndim = raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise GanforgeError(f"{where}: truncated IDX file (the header is cut short); download it again")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    count = math.prod(dims)  # Python ints: a forged header cannot overflow
    need, have = count * dtype.itemsize, len(raw) - head
    if have != need:
        what = "truncated" if have < need else "too long"
        raise GanforgeError(
            f"{where}: {what} IDX file: its header says {'x'.join(map(str, dims))} ({need} bytes of data) but "
            f"{have} bytes follow; delete it and download it again")
    return np.frombuffer(raw, dtype, count=count, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


@dataclass(frozen=True)
class _Source:
    """One IDX file: a plain/.gz file, or a member of a zip archive."""
    path: Path
    member: str = ""

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    def __str__(self) -> str:
        return f"{self.path}:{self.member}" if self.member else str(self.path)

    def read(self) -> tuple[bytes, bytes]:
        """(bytes as stored, decompressed bytes); GanforgeError naming the file on read/gzip errors."""
        try:
            if self.member:
                with zipfile.ZipFile(self.path) as z:
                    stored = z.read(self.member)
            else:
                stored = self.path.read_bytes()
            raw = gzip.decompress(stored) if self.name.endswith(".gz") else stored
        except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
            raise GanforgeError(f"{self}: cannot read ({e}); the file is damaged or incomplete, "
                                f"delete it and download it again") from None
        return stored, raw


def _candidates(stem: str) -> list[str]:
    # Kaggle's copies spell them "train-images.idx3-ubyte"; accept both, plain or gzip.
    alt = stem.replace("-idx", ".idx")
    return [n + suf for n in dict.fromkeys((stem, alt)) for suf in ("", ".gz")]


def _locate(stem: str, dirs: list[Path], zips: list[Path]) -> _Source | None:
    for d in dirs:
        for n in _candidates(stem):
            if (d / n).is_file():
                return _Source(d / n)
    for z in zips:
        if z.is_file():
            try:
                with zipfile.ZipFile(z) as zf:
                    names = set(zf.namelist())
            except (OSError, zipfile.BadZipFile) as e:
                raise GanforgeError(f"{z}: not a readable zip archive ({e}); delete it and download it again") from None
            for n in _candidates(stem):
                for m in (f"gzip/{n}", n):
                    if m in names:
                        return _Source(z, m)
    return None


# ---------------------------------------------------------------------------------------------------
# the loader


def _stems(key: str, variant: str, split: str) -> list[tuple[str, str]]:
    if split not in ("train", "test", "all"):
        raise GanforgeError(f"data.split: choose train, test or all, got {split!r}")
    splits = ["train", "test"] if split == "all" else [split]
    if key == "emnist":
        return [(f"emnist-{variant}-{s}-images-idx3-ubyte", f"emnist-{variant}-{s}-labels-idx1-ubyte") for s in splits]
    return [SPLIT_FILES[s] for s in splits]


def load_idx(key: str, cfg) -> Data:
    """Load one MNIST-family set (see the module docstring for where files are searched)."""
    spec = IDX_SETS[key]
    variant = cfg.variant
    if key == "emnist":
        variant = variant or "balanced"
        if variant not in spec.variants:
            raise GanforgeError(f"data.variant: EMNIST has no variant {variant!r}; choose one of: "
                                f"{', '.join(spec.variants)}")
        classes = spec.variants[variant]
    else:
        if variant:
            raise GanforgeError(f"data.variant: {key} has no variants; leave it empty (got {variant!r})")
        classes = spec.classes
    pairs = _stems(key, variant, cfg.split)
    stems = [s for pair in pairs for s in pair]

    cache = cache_dir(cfg.cache_dir) / key
    if cfg.path:
        root = Path(cfg.path).expanduser()
        if key == "emnist" and root.is_file() and root.suffix == ".zip":
            dirs, zips = [], [root]
        elif not root.is_dir():
            raise GanforgeError(f"data.path: {root} is not a directory; point it at the folder holding "
                                f"{stems[0]}[.gz] and the other {spec.title} files")
        else:
            dirs, zips = [root, root / "gzip"], [root / EMNIST_ZIP]
    else:
        dirs = [cache, cache / "gzip"] + [Path(d) for d in spec.system_dirs]
        zips = [cache / EMNIST_ZIP]
    if key != "emnist":
        zips = []

    found = {s: _locate(s, dirs, zips) for s in stems}
    status: dict[str, str] = {}
    missing = [s for s in stems if found[s] is None]
    if missing and not cfg.path and cfg.download:
        if key == "emnist":
            status[EMNIST_ZIP] = download.download(list(spec.mirrors), cache / EMNIST_ZIP,
                                                spec.checksums[EMNIST_ZIP], f"{key} ({spec.title})")
        else:
            for s in missing:
                name = s + ".gz"
                status[name] = download.download([m + name for m in spec.mirrors], cache / name,
                                              spec.checksums[name], f"{key} ({spec.title})")
        found = {s: _locate(s, dirs, zips) for s in stems}
        missing = [s for s in stems if found[s] is None]
    if missing:
        looked = ", ".join(str(d) for d in dirs + zips)
        if cfg.path:
            fix = "put the files there or correct data.path"
        else:
            fix = "set --set data.path=DIR (a folder holding them)"
            fix += f" {spec.hint}" if spec.hint else ""
            fix += (", or --set data.download=true to fetch the official files into " + str(cache)
                    if not cfg.download else "")
        raise GanforgeError(f"{key}: {spec.title} files not found: {', '.join(s + '[.gz]' for s in missing)}; "
                            f"looked in {looked}; {fix}")

    xs, ys, read = [], [], []
    for img_stem, lab_stem in pairs:
        src_x, src_y = found[img_stem], found[lab_stem]
        assert src_x is not None and src_y is not None
        x = _read_checked(src_x, status, spec, want_ndim=3)
        y = _read_checked(src_y, status, spec, want_ndim=1)
        if x.shape[0] != y.shape[0]:
            raise GanforgeError(f"{src_y}: holds {y.shape[0]} labels but {src_x} holds {x.shape[0]} images; "
                                f"the two files do not belong together, download them again")
        if key == "emnist":
            x = x.transpose(0, 2, 1)  # EMNIST stores images transposed (column-major)
            if variant == "letters":
                y = y.astype(np.int64) - 1  # letters labels are 1..26 in the files
        if y.size and (y.min() < 0 or y.max() >= len(classes)):
            raise GanforgeError(f"{src_y}: labels must lie in 0..{len(classes) - 1} for {spec.title}"
                                f"{' ' + variant if variant else ''}, found {int(y.min())}..{int(y.max())}; "
                                f"is it the right file?")
        xs.append(x)
        ys.append(y)
        read += [str(src_x), str(src_y)]

    x = np.concatenate(xs) if len(xs) > 1 else xs[0]
    y = np.concatenate(ys) if len(ys) > 1 else ys[0]
    if cfg.max_items:
        x, y = x[: cfg.max_items], y[: cfg.max_items]  # slice before resizing: less work
    x = np.ascontiguousarray(x)[:, None]  # [N, 1, h, w] uint8
    size = target_size(cfg, tuple(x.shape[-2:]), spec.title)
    x = images.resize(x, size)
    if cfg.channels not in (0, 1):
        if cfg.channels != 3:
            raise GanforgeError(f"data.channels: {spec.title} is grey; choose 1 or 3, got {cfg.channels}")
        x = np.repeat(x, 3, axis=1)  # grey -> RGB by repetition
    preprocessing = []
    if key == "emnist":
        preprocessing.append("transposed (EMNIST storage order)")
    if size != (28, 28):
        preprocessing.append(f"resized to {size[0]}x{size[1]} ({images.RESAMPLE_NAME})")
    if x.shape[1] == 3:
        preprocessing.append("grey repeated to 3 channels")
    return Data(x=torch.from_numpy(np.ascontiguousarray(x)), kind="image", name=key,
                labels=torch.from_numpy(y.astype(np.int64)),
                class_names=list(classes),
                info=dict(source=spec.title, files=read, split=cfg.split, variant=variant or None,
                          checksums=status, preprocessing=preprocessing, max_items=cfg.max_items or None))


def _read_checked(src: _Source, status: dict[str, str], spec: IdxSet, want_ndim: int) -> np.ndarray:
    stored, raw = src.read()
    arr = parse_idx(raw, str(src))
    if want_ndim == 3 and (arr.ndim != 3 or arr.dtype != np.uint8):
        raise GanforgeError(f"{src}: expected uint8 images [N, H, W], found {arr.dtype} {list(arr.shape)}; "
                            f"is it a labels file?")
    if want_ndim == 1 and (arr.ndim != 1 or arr.dtype.kind not in "iu"):
        raise GanforgeError(f"{src}: expected integer labels [N], found {arr.dtype} {list(arr.shape)}; "
                            f"is it an images file?")
    if src.member:
        status.setdefault(src.name, f"member of {src.path.name}; not re-verified")
    elif src.name not in status:  # not downloaded just now: compare with the official digest, for the record
        ref = spec.checksums.get(src.name)
        status[src.name] = download.checksum_status(stored, ref) if ref else "no reference checksum (uncompressed file)"
    return arr


for _key, _spec in IDX_SETS.items():
    DATASETS.register(_key, doc=f"{_spec.title} (IDX files; looked for locally, downloaded when online)")(
        functools.partial(load_idx, _key))
