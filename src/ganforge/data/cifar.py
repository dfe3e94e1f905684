"""CIFAR-10 (`cifar10`) and CIFAR-100 (`cifar100`) in the official "python version" format
(Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html).

Each batch is a pickled dict with bytes keys: b"data" uint8 [N, 3072] (1024 red, 1024 green, 1024 blue values
per image, row-major 32x32) and b"labels" (CIFAR-10) or b"fine_labels"/b"coarse_labels" (CIFAR-100).
`data.variant` for cifar100: fine (default, 100 classes) or coarse (20 superclasses).

The files are read from, in order: `data.path` (the batches folder, a folder holding it or the tarball, or
the tarball itself), the cache `cache_dir(data.cache_dir)/<name>/` (folder or tarball), else the official
tarball is downloaded there (when `data.download` is true) and checked against its official MD5.
Tarball members are read in place; nothing is extracted.

Pickles can run code when loaded, so they are read with an Unpickler that allows only the few globals a
CIFAR batch needs (numpy array reconstruction and plain builtins) and refuses anything else.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GanforgeError
from ..utils import download, images
from .base import DATASETS, Data, cache_dir, target_size


@dataclass(frozen=True)
class CifarSet:
    title: str
    folder: str                                   # folder inside the tarball
    tarball: str
    url: str
    checksum: str                                 # official MD5 of the tarball
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    variants: dict[str, tuple[bytes, bytes]]      # variant -> (labels key, class-names key in meta)
    member_md5: dict[str, str] = field(default_factory=dict)  # official MD5 of each member (as torchvision pins)


CIFAR_SETS: dict[str, CifarSet] = {
    "cifar10": CifarSet(
        title="CIFAR-10", folder="cifar-10-batches-py", tarball="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        checksum="md5:c58f30108f718f92721af3b95e74349a",
        train=tuple(f"data_batch_{i}" for i in range(1, 6)), test=("test_batch",), meta="batches.meta",
        variants={"": (b"labels", b"label_names")},
        member_md5={"data_batch_1": "c99cafc152244af753f735de768cd75f",
                    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
                    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
                    "data_batch_4": "634d18415352ddfa80567beed471001a",
                    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
                    "test_batch": "40351d587109b95175f43aff81a1287e",
                    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}),
    "cifar100": CifarSet(
        title="CIFAR-100", folder="cifar-100-python", tarball="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        checksum="md5:eb9058c3a382ffc7106e4002c42a8d85",
        train=("train",), test=("test",), meta="meta",
        variants={"fine": (b"fine_labels", b"fine_label_names"),
                  "coarse": (b"coarse_labels", b"coarse_label_names")},
        member_md5={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                    "meta": "7973b15100ade9c7d40fb424638fde48"}),
}


# ---------------------------------------------------------------------------------------------------
# restricted unpickling


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The only globals a CIFAR pickle may name: numpy array/scalar reconstruction and inert builtins."""
    try:  # numpy >= 2 (and 1.26's forward-compatibility alias)
        multiarray = importlib.import_module("numpy._core.multiarray")
        numeric = importlib.import_module("numpy._core.numeric")
    except ImportError:  # older numpy
        multiarray = importlib.import_module("numpy.core.multiarray")
        numeric = importlib.import_module("numpy.core.numeric")
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                           ("_codecs", "encode"): __import__("codecs").encode}
    for core in ("numpy.core", "numpy._core"):  # the official files (Python 2) say numpy.core
        allowed[(f"{core}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    for mod in ("builtins", "__builtin__"):
        for t in (list, dict, tuple, set, frozenset, bytes, bytearray, str, int, float, complex, bool):
            allowed[(mod, t.__name__)] = t
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, f: io.BytesIO, allowed: dict[tuple[str, str], Any]):
        super().__init__(f, encoding="bytes")  # Python 2 pickles: str -> bytes, as the CIFAR page says
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"it names {module}.{name}, which a CIFAR batch never contains (ganforge does not run code from "
                f"data files)") from None


def safe_unpickle(raw: bytes, where: str) -> Any:
    """Unpickle `raw` allowing only numpy arrays and builtins; GanforgeError naming `where` otherwise."""
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), _allowed_globals()).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError) as e:
        raise GanforgeError(f"{where}: not a readable CIFAR python pickle ({e}); use the official "
                            f"'python version' files, or delete it and download again") from None


# ---------------------------------------------------------------------------------------------------
# locating and reading members


@dataclass(frozen=True)
class _Store:
    """A folder of batch files or a tarball holding `<folder>/<batch>`."""
    path: Path
    folder: str = ""  # set for tarballs

    def read(self, names: list[str]) -> dict[str, bytes]:
        if not self.folder:
            out = {}
            for n in names:
                p = self.path / n
                if not p.is_file():
                    raise GanforgeError(f"{p}: missing; a CIFAR folder holds {', '.join(names)}; "
                                        f"restore it or point data.path at the official tarball")
                out[n] = p.read_bytes()
            return out
        want = {f"{self.folder}/{n}": n for n in names}
        out = {}
        try:
            with tarfile.open(self.path, "r:*") as tar:
                for m in tar:  # one pass over the stream; read members in place, extract nothing
                    if m.name in want and m.isfile():
                        f = tar.extractfile(m)
                        assert f is not None
                        out[want[m.name]] = f.read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise GanforgeError(f"{self.path}: cannot read the tarball ({e}); it is damaged or incomplete, "
                                f"delete it and download it again") from None
        lost = [k for k, n in want.items() if n not in out]
        if lost:
            raise GanforgeError(f"{self.path}: the tarball lacks {', '.join(lost)}; is it the official "
                                f"python-version CIFAR tarball?")
        return out

    def __str__(self) -> str:
        return str(self.path)


def _store_in(p: Path, spec: CifarSet) -> _Store | None:
    """A store at `p`: the batches folder itself, a folder holding it or the tarball, or the tarball."""
    if p.is_file():
        return _Store(p, spec.folder)
    if (p / spec.meta).is_file() and (p / spec.test[0]).is_file():
        return _Store(p)
    if (p / spec.folder).is_dir():
        return _Store(p / spec.folder)
    if (p / spec.tarball).is_file():
        return _Store(p / spec.tarball, spec.folder)
    return None


def _field(d: dict, key: bytes, where: str) -> Any:
    if key in d:
        return d[key]
    if key.decode() in d:  # a Python 3 re-pickle with str keys
        return d[key.decode()]
    raise GanforgeError(f"{where}: has no {key.decode()!r} entry (keys: {', '.join(map(str, d))}); "
                        f"is it the right CIFAR file?")


def load_cifar(key: str, cfg) -> Data:
    """Load CIFAR-10 or CIFAR-100 (see the module docstring for where files are searched)."""
    spec = CIFAR_SETS[key]
    variant = cfg.variant or next(iter(spec.variants))
    if variant not in spec.variants:
        if len(spec.variants) == 1:
            raise GanforgeError(f"data.variant: {key} has no variants; leave it empty (got {cfg.variant!r})")
        raise GanforgeError(f"data.variant: {key} has no variant {cfg.variant!r}; choose one of: "
                            f"{', '.join(spec.variants)}")
    label_key, names_key = spec.variants[variant]
    if cfg.split not in ("train", "test", "all"):
        raise GanforgeError(f"data.split: choose train, test or all, got {cfg.split!r}")
    batches = (list(spec.train) if cfg.split != "test" else []) + (list(spec.test) if cfg.split != "train" else [])

    cache = cache_dir(cfg.cache_dir) / key
    checksums: dict[str, str] = {}
    if cfg.path:
        root = Path(cfg.path).expanduser()
        store = _store_in(root, spec) if root.exists() else None
        if store is None:
            raise GanforgeError(f"data.path: {root} holds no {spec.title} data; point it at the "
                                f"{spec.folder} folder, a folder holding it, or {spec.tarball}")
    else:
        store = _store_in(cache, spec) if cache.is_dir() else None
        if store is None:
            if not cfg.download:
                raise GanforgeError(
                    f"{key}: {spec.title} not found in {cache} (looked for {spec.folder}/ and {spec.tarball}) and "
                    f"data.download is false; set --set data.path=DIR (the {spec.folder} folder or the tarball), "
                    f"or --set data.download=true to fetch {spec.url}")
            checksums[spec.tarball] = download.download([spec.url], cache / spec.tarball, spec.checksum,
                                                     f"{key} ({spec.title})")
            store = _Store(cache / spec.tarball, spec.folder)

    raw = store.read(batches + [spec.meta])
    checksums.update({n: ("md5 matches the official file" if hashlib.md5(b).hexdigest() == spec.member_md5.get(n)
                          else "md5 differs from the official file") for n, b in raw.items()})

    meta = safe_unpickle(raw[spec.meta], f"{store}:{spec.meta}")
    if not isinstance(meta, dict):
        raise GanforgeError(f"{store}:{spec.meta}: expected a dict of class names, got {type(meta).__name__}")
    names = _field(meta, names_key, f"{store}:{spec.meta}")
    class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]

    xs, ys = [], []
    for b in batches:
        where = f"{store}:{b}"
        d = safe_unpickle(raw.pop(b), where)  # pop: free the pickled bytes as we go
        if not isinstance(d, dict):
            raise GanforgeError(f"{where}: expected a dict batch, got {type(d).__name__}")
        x = _field(d, b"data", where)
        y = np.asarray(_field(d, label_key, where))
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise GanforgeError(f"{where}: data must be uint8 [N, 3072], found "
                                f"{getattr(x, 'dtype', type(x).__name__)} {list(getattr(x, 'shape', []))}")
        if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
            raise GanforgeError(f"{where}: {label_key.decode()} must be {x.shape[0]} integers (one per image), "
                                f"found {y.dtype} {list(y.shape)}")
        if y.size and (y.min() < 0 or y.max() >= len(class_names)):
            raise GanforgeError(f"{where}: labels must lie in 0..{len(class_names) - 1}, found "
                                f"{int(y.min())}..{int(y.max())}")
        xs.append(x.reshape(-1, 3, 32, 32))  # [N, 3, 32, 32]: channel planes, row-major
        ys.append(y.astype(np.int64))
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    if cfg.max_items:
        x, y = x[: cfg.max_items], y[: cfg.max_items]

    if cfg.channels not in (0, 1, 3):
        raise GanforgeError(f"data.channels: {spec.title} is RGB; choose 1 or 3, got {cfg.channels}")
    size = target_size(cfg, (32, 32), spec.title)
    x = images.resize(np.ascontiguousarray(x), size)
    preprocessing = []
    if size != (32, 32):
        preprocessing.append(f"resized to {size[0]}x{size[1]} ({images.RESAMPLE_NAME})")
    if cfg.channels == 1:
        x = images.luma(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        preprocessing.append("RGB -> grey (ITU-R 601 luma, as PIL)")
    return Data(x=torch.from_numpy(np.ascontiguousarray(x)), kind="image", name=key, labels=torch.from_numpy(y),
                class_names=class_names,
                info=dict(source=spec.title, store=str(store), files=batches + [spec.meta], split=cfg.split,
                          variant=variant or None, checksums=checksums,
                          preprocessing=preprocessing, max_items=cfg.max_items or None))


for _key, _spec in CIFAR_SETS.items():
    DATASETS.register(_key, doc=f"{_spec.title} (official python-version batches or tarball)")(
        functools.partial(load_cifar, _key))
