"""File-backed dataset loaders: IDX (MNIST family), CIFAR pickles, image folders, vectors.

Every test writes its own tiny files under tmp_path; nothing touches the network (downloads are exercised
by monkeypatching `ganforge.utils.download.fetch`).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tarfile
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.config import DataConfig
from ganforge.data import build_dataset, cifar, folder, idx
from ganforge.utils import download
from ganforge.errors import GanforgeError


def cfg(tmp_path: Path, **kw) -> DataConfig:
    """A DataConfig that never downloads and caches under tmp_path."""
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    kw.setdefault("download", False)
    return DataConfig(**kw)


# ---------------------------------------------------------------------------------------------------
# IDX


def idx_bytes(a: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[a.dtype.type]
    header = bytes([0, 0, code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)  # magic, then big-endian dims
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, a: np.ndarray, gz: bool = False) -> Path:
    raw = idx_bytes(a)
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


def make_mnist(d: Path, n_train: int = 12, n_test: int = 5, gz: bool = False, prefix: str = "",
               transposed: bool = False) -> dict[str, np.ndarray]:
    """Write an MNIST-layout set of random images; returns the arrays as they should load."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    for split, n, stem in (("train", n_train, "train"), ("test", n_test, "t10k")):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        s = f"{prefix}-{split}" if prefix else stem
        write_idx(d / f"{s}-images-idx3-ubyte", x.transpose(0, 2, 1).copy() if transposed else x, gz)
        write_idx(d / f"{s}-labels-idx1-ubyte", y + (1 if prefix.endswith("letters") else 0), gz)
        out[split] = x
        out[split + "_y"] = y
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_idx_splits_plain_and_gzip(tmp_path, gz):
    ref = make_mnist(tmp_path / "m", gz=gz)
    d = build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "m")))
    assert d.x.shape == (12, 1, 28, 28) and d.x.dtype == torch.uint8 and d.kind == "image"
    assert torch.equal(d.x[:, 0], torch.from_numpy(ref["train"]))
    assert d.labels.tolist() == ref["train_y"].tolist() and d.class_names == [str(i) for i in range(10)]
    assert len(build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "m"), split="test"))) == 5
    d = build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "m"), split="all", max_items=14))
    assert len(d) == 14 and torch.equal(d.x[12:, 0], torch.from_numpy(ref["test"][:2]))
    assert all(str(tmp_path / "m") in f for f in d.info["files"])


def test_idx_resize_and_channels(tmp_path):
    make_mnist(tmp_path / "m")
    d = build_dataset(cfg(tmp_path, name="kmnist", path=str(tmp_path / "m"), resolution=32, channels=3))
    assert d.x.shape == (12, 3, 32, 32) and torch.equal(d.x[:, 0], d.x[:, 2])
    assert any("resized" in p for p in d.info["preprocessing"])
    with pytest.raises(GanforgeError, match="data.width"):
        build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "m"), resolution=32, width=16))
    with pytest.raises(GanforgeError, match="data.channels"):
        build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "m"), channels=4))
    with pytest.raises(GanforgeError, match="data.variant"):
        build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "m"), variant="letters"))


def test_idx_malformed_files(tmp_path):
    d = tmp_path / "m"
    make_mnist(d)
    c = cfg(tmp_path, name="mnist", path=str(d))
    good = (d / "train-images-idx3-ubyte").read_bytes()
    (d / "train-images-idx3-ubyte").write_bytes(good[:-100])  # truncated
    with pytest.raises(GanforgeError, match=r"train-images-idx3-ubyte: truncated IDX file"):
        build_dataset(c)
    (d / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + good[4:])  # bad magic
    with pytest.raises(GanforgeError, match=r"train-images-idx3-ubyte: not an IDX file"):
        build_dataset(c)
    (d / "train-images-idx3-ubyte").write_bytes(good)
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(11, np.uint8))  # 11 labels for 12 images
    with pytest.raises(GanforgeError, match=r"train-labels-idx1-ubyte: holds 11 labels but .* 12 images"):
        build_dataset(c)
    write_idx(d / "train-labels-idx1-ubyte", np.full(12, 10, np.uint8))  # label out of range
    with pytest.raises(GanforgeError, match=r"labels must lie in 0..9"):
        build_dataset(c)
    for f in d.iterdir():
        f.unlink()
    make_mnist(d, gz=True)
    gzp = d / "train-images-idx3-ubyte.gz"
    gzp.write_bytes(gzp.read_bytes()[:-30])  # a cut-off download
    with pytest.raises(GanforgeError, match=r"train-images-idx3-ubyte.gz: cannot read"):
        build_dataset(c)


def test_idx_not_found_offline_says_where_and_how(tmp_path, monkeypatch):
    with pytest.raises(GanforgeError) as e:
        build_dataset(cfg(tmp_path, name="mnist"))
    msg = str(e.value)
    assert str(tmp_path / "cache" / "mnist") in msg and "data.path" in msg and "data.download=true" in msg
    spec = dataclasses.replace(idx.IDX_SETS["fashion"], system_dirs=(str(tmp_path / "nowhere"),))
    monkeypatch.setitem(idx.IDX_SETS, "fashion", spec)
    with pytest.raises(GanforgeError, match="apt-get install dataset-fashion-mnist"):
        build_dataset(cfg(tmp_path, name="fashion"))
    with pytest.raises(GanforgeError, match="is not a directory"):
        build_dataset(cfg(tmp_path, name="mnist", path=str(tmp_path / "missing")))


def test_emnist_transposed_from_files_and_zip(tmp_path):
    ref = make_mnist(tmp_path / "e", prefix="emnist-letters", transposed=True, gz=True)
    d = build_dataset(cfg(tmp_path, name="emnist", variant="letters", path=str(tmp_path / "e")))
    assert torch.equal(d.x[:, 0], torch.from_numpy(ref["train"]))  # transposed back
    assert d.labels.tolist() == ref["train_y"].tolist() and d.class_names[0] == "a" and len(d.class_names) == 26
    # the official archive layout, found in the cache: gzip.zip holding gzip/emnist-...gz
    z = tmp_path / "cache" / "emnist" / "gzip.zip"
    z.parent.mkdir(parents=True)
    with zipfile.ZipFile(z, "w") as zf:
        for f in (tmp_path / "e").iterdir():
            zf.write(f, f"gzip/{f.name}")
    d2 = build_dataset(cfg(tmp_path, name="emnist", variant="letters", split="test"))
    assert torch.equal(d2.x[:, 0], torch.from_numpy(ref["test"]))
    assert "gzip.zip" in d2.info["files"][0]
    with pytest.raises(GanforgeError, match="no variant 'nope'"):
        build_dataset(cfg(tmp_path, name="emnist", variant="nope"))
    assert len(idx.IDX_SETS["emnist"].variants["balanced"]) == 47
    assert len(idx.IDX_SETS["emnist"].variants["byclass"]) == 62


def _fake_official(monkeypatch, src: Path, key: str, names: list[str]) -> list[str]:
    """Point the checksum table at local files and make `fetch` copy them; returns the fetched URLs."""
    spec = idx.IDX_SETS[key]
    sums = {n: "md5:" + hashlib.md5((src / n).read_bytes()).hexdigest() for n in names}
    monkeypatch.setitem(idx.IDX_SETS, key, dataclasses.replace(spec, checksums=sums))
    fetched: list[str] = []

    def fake_fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
        fetched.append(url)
        shutil.copyfile(src / url.rsplit("/", 1)[-1], dest)

    monkeypatch.setattr(download, "fetch", fake_fetch)
    return fetched


def test_idx_download_verifies_checksums(tmp_path, monkeypatch):
    src = tmp_path / "official"
    ref = make_mnist(src, gz=True)
    names = [f.name for f in src.iterdir()]
    fetched = _fake_official(monkeypatch, src, "mnist", names)
    d = build_dataset(cfg(tmp_path, name="mnist", download=True, split="all"))
    assert torch.equal(d.x[:12, 0], torch.from_numpy(ref["train"])) and len(fetched) == 4
    assert fetched[0].startswith(idx.IDX_SETS["mnist"].mirrors[0])
    assert all("md5 verified" in s for s in d.info["checksums"].values())
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(names)
    d = build_dataset(cfg(tmp_path, name="mnist", download=True))  # now found in the cache
    assert len(fetched) == 4 and d.info["checksums"]["train-images-idx3-ubyte.gz"].startswith("md5 matches")


def test_download_checksum_mismatch_leaves_nothing(tmp_path, monkeypatch):
    src = tmp_path / "official"
    make_mnist(src, gz=True)
    _fake_official(monkeypatch, src, "mnist", [f.name for f in src.iterdir()])
    (src / "train-images-idx3-ubyte.gz").write_bytes(b"tampered")  # the mirror now serves other bytes
    with pytest.raises(GanforgeError, match=r"train-images-idx3-ubyte.gz.*md5 checksum mismatch"):
        build_dataset(cfg(tmp_path, name="mnist", download=True))
    assert not any("train-images" in p.name for p in (tmp_path / "cache" / "mnist").iterdir())

    def offline(url, dest, timeout=60.0):
        Path(dest).write_bytes(b"partial")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "fetch", offline)
    with pytest.raises(GanforgeError, match="could not download .*no network"):
        download.download(["http://x/a.gz", "http://y/a.gz"], tmp_path / "dl" / "a.gz", "md5:" + "0" * 32, "test")
    assert list((tmp_path / "dl").iterdir()) == []


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_debian(tmp_path):
    d = build_dataset(cfg(tmp_path, name="fashion", max_items=64))
    assert d.x.shape == (64, 1, 28, 28) and d.x.dtype == torch.uint8
    assert d.labels.min() >= 0 and d.labels.max() <= 9 and d.class_names[9] == "Ankle boot"
    assert d.info["files"][0].startswith("/usr/share/datasets/fashion-mnist/")


# ---------------------------------------------------------------------------------------------------
# CIFAR


class Py2Pickler(pickle._Pickler):
    """Writes str and bytes as Python 2 `str` (SHORT_BINSTRING/BINSTRING), as the official CIFAR files do."""

    def save_py2str(self, obj):
        b = obj.encode("latin1") if isinstance(obj, str) else obj
        self.write((b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[str] = save_py2str
    dispatch[bytes] = save_py2str


def cifar_pickle(obj, legacy: bool = True) -> bytes:
    """The official layout (Python 2 pickle naming numpy.core.multiarray), or a modern Python 3 re-pickle."""
    if not legacy:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f = io.BytesIO()
    Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def make_cifar(root: Path, key: str = "cifar10", n: int = 3, tar: bool = False) -> np.ndarray:
    """Write a tiny official-layout CIFAR folder (or tarball) under root; returns all train images [N, 3, 32, 32]."""
    spec = cifar.CIFAR_SETS[key]
    rng = np.random.default_rng(1)
    members: dict[str, bytes] = {}
    train = []
    for name in spec.train + spec.test:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        d = {b"batch_label": b"x", b"data": x, b"filenames": [b"f.png"] * n}
        if key == "cifar10":
            d[b"labels"] = [i % 10 for i in range(n)]
        else:
            d[b"fine_labels"] = [99 - i for i in range(n)]
            d[b"coarse_labels"] = [i for i in range(n)]
        members[name] = cifar_pickle(d, legacy=not name.endswith("2"))
        if name in spec.train:
            train.append(x.reshape(n, 3, 32, 32))
    if key == "cifar10":
        meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": n}
    else:
        meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}
    members[spec.meta] = cifar_pickle(meta)
    root.mkdir(parents=True, exist_ok=True)
    if tar:
        with tarfile.open(root / spec.tarball, "w:gz") as t:
            for name, raw in members.items():
                info = tarfile.TarInfo(f"{spec.folder}/{name}")
                info.size = len(raw)
                t.addfile(info, io.BytesIO(raw))
    else:
        (root / spec.folder).mkdir()
        for name, raw in members.items():
            (root / spec.folder / name).write_bytes(raw)
    return np.concatenate(train)


def test_cifar10_folder_layout(tmp_path):
    ref = make_cifar(tmp_path / "c")
    d = build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c")))
    assert d.x.shape == (15, 3, 32, 32) and torch.equal(d.x, torch.from_numpy(ref))
    assert d.labels.tolist() == [0, 1, 2] * 5 and d.class_names[:2] == ["c0", "c1"]
    d = build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c" / "cifar-10-batches-py"),
                          split="all", max_items=16, resolution=16, channels=1))
    assert d.x.shape == (16, 1, 16, 16)
    assert build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c"), split="test")).x.shape[0] == 3


def test_cifar_tarball_and_cifar100_variants(tmp_path):
    ref = make_cifar(tmp_path / "t", key="cifar100", tar=True)
    tarball = tmp_path / "t" / "cifar-100-python.tar.gz"
    d = build_dataset(cfg(tmp_path, name="cifar100", path=str(tarball)))
    assert torch.equal(d.x, torch.from_numpy(ref)) and d.labels.tolist() == [99, 98, 97] and len(d.class_names) == 100
    d = build_dataset(cfg(tmp_path, name="cifar100", path=str(tmp_path / "t"), variant="coarse"))
    assert d.labels.tolist() == [0, 1, 2] and d.class_names[0] == "s0"
    with pytest.raises(GanforgeError, match="no variant"):
        build_dataset(cfg(tmp_path, name="cifar100", path=str(tarball), variant="medium"))
    with pytest.raises(GanforgeError, match="holds no CIFAR-10 data"):
        build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "t")))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_refuses_pickled_code_and_bad_batches(tmp_path):
    make_cifar(tmp_path / "c")
    batch = tmp_path / "c" / "cifar-10-batches-py" / "data_batch_2"
    batch.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(GanforgeError, match=r"data_batch_2: .*posix.system|data_batch_2: .*os.system"):
        build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c")))
    batch.write_bytes(cifar_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(GanforgeError, match=r"data_batch_2: data must be uint8 \[N, 3072\]"):
        build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c")))
    batch.write_bytes(cifar_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}))
    with pytest.raises(GanforgeError, match=r"data_batch_2: labels must be 2 integers"):
        build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c")))
    batch.unlink()
    with pytest.raises(GanforgeError, match=r"data_batch_2: missing"):
        build_dataset(cfg(tmp_path, name="cifar10", path=str(tmp_path / "c")))


def test_cifar_download_and_offline(tmp_path, monkeypatch):
    with pytest.raises(GanforgeError, match=r"cifar10: CIFAR-10 not found .*data.download is false"):
        build_dataset(cfg(tmp_path, name="cifar10"))
    make_cifar(tmp_path / "official", tar=True)
    tarball = tmp_path / "official" / "cifar-10-python.tar.gz"
    spec = dataclasses.replace(cifar.CIFAR_SETS["cifar10"], checksum="md5:" + download.file_digest(tarball))
    monkeypatch.setitem(cifar.CIFAR_SETS, "cifar10", spec)
    urls: list[str] = []
    monkeypatch.setattr(download, "fetch",
                        lambda url, dest, timeout=60.0: (urls.append(url), shutil.copyfile(tarball, dest)))
    d = build_dataset(cfg(tmp_path, name="cifar10", download=True))
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"] and len(d) == 15
    assert "md5 verified" in d.info["checksums"]["cifar-10-python.tar.gz"]
    assert (tmp_path / "cache" / "cifar10" / "cifar-10-python.tar.gz").is_file()


# ---------------------------------------------------------------------------------------------------
# image folders


def make_folder(root: Path) -> None:
    """cats/: a grey PNG and an RGB JPEG; dogs/: an RGB WebP, an RGB BMP, a transparent RGBA PNG."""
    rng = np.random.default_rng(2)
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    Image.fromarray(rng.integers(0, 256, (20, 30), dtype=np.uint8), "L").save(root / "cats" / "a.png")
    Image.fromarray(rng.integers(0, 256, (24, 16, 3), dtype=np.uint8), "RGB").save(root / "cats" / "b.jpg")
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8), "RGB").save(root / "dogs" / "c.webp", lossless=True)
    Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8), "RGB").save(root / "dogs" / "d.bmp")
    Image.fromarray(np.zeros((12, 12, 4), np.uint8), "RGBA").save(root / "dogs" / "e.png")  # fully transparent
    (root / "dogs" / "notes.txt").write_text("not an image")


def test_folder_labels_channels_non_square(tmp_path):
    make_folder(tmp_path / "img")
    d = build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "img"), resolution=8, width=12))
    assert d.x.shape == (5, 3, 8, 12) and d.x.dtype == torch.uint8  # mixed modes -> RGB
    assert d.labels.tolist() == [0, 0, 1, 1, 1] and d.class_names == ["cats", "dogs"]
    assert torch.equal(d.x[0, 0], d.x[0, 1])  # grey repeated
    assert (d.x[2] == 200).all() and (d.x[4] == 255).all()  # lossless WebP; transparent composited on white
    d1 = build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "img"), resolution=8, channels=1))
    assert d1.x.shape == (5, 1, 8, 8)
    d4 = build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "img"), resolution=8, channels=4,
                           max_items=4))
    assert d4.x.shape == (4, 4, 8, 8) and (d4.x[:, 3] == 255).all()  # no alpha in the first 4 -> opaque


def test_folder_automatic_channels_and_native_size(tmp_path):
    grey = tmp_path / "grey"
    grey.mkdir()
    for i in range(3):
        Image.fromarray(np.full((6, 5), 10 * i, np.uint8), "L").save(grey / f"{i}.png")
    # 16-bit grey PNG: scaled to 8 bits, not clipped
    Image.fromarray(np.full((6, 5), 65535, np.uint16)).save(grey / "3.png")
    d = build_dataset(cfg(tmp_path, name="folder", path=str(grey)))
    assert d.x.shape == (4, 1, 6, 5) and d.labels is None and d.x[3].min() == 255
    Image.fromarray(np.zeros((7, 5), np.uint8), "L").save(grey / "4.png")
    with pytest.raises(GanforgeError, match=r"4.png: is 5x7 .* set data.resolution"):
        build_dataset(cfg(tmp_path, name="folder", path=str(grey)))
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    Image.fromarray(np.zeros((4, 4, 4), np.uint8), "RGBA").save(rgba / "a.png")
    assert build_dataset(cfg(tmp_path, name="folder", path=str(rgba))).x.shape == (1, 4, 4, 4)


def test_folder_random_crop_is_seeded(tmp_path):
    (tmp_path / "r").mkdir()
    noise = np.random.default_rng(3).integers(0, 256, (16, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "r" / "w.png")

    def load(seed, cache):
        return build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "r"), resolution=8, crop="random",
                                 seed=seed, cache_dir=str(tmp_path / cache))).x
    assert torch.equal(load(0, "c1"), load(0, "c2"))
    assert any(not torch.equal(load(0, "c1"), load(s, "c3")) for s in (1, 2, 3))


def test_folder_cache_skips_decoding(tmp_path, monkeypatch):
    make_folder(tmp_path / "img")
    c = cfg(tmp_path, name="folder", path=str(tmp_path / "img"), resolution=8)
    first = build_dataset(c)
    assert first.info["cache"].startswith("built")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: (opened.append(a[0]), real_open(*a, **k))[1])
    second = build_dataset(c)
    assert opened == [] and second.info["cache"].startswith("loaded")
    assert torch.equal(first.x, second.x) and torch.equal(first.labels, second.labels)
    assert second.class_names == first.class_names
    build_dataset(dataclasses.replace(c, resolution=4))  # another option -> decoded again
    assert len(opened) == 5
    p = tmp_path / "img" / "cats" / "a.png"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 10**9))  # a changed file -> decoded again
    build_dataset(c)
    assert len(opened) == 10


def test_folder_errors_and_skip_corrupt(tmp_path):
    with pytest.raises(GanforgeError, match="does not exist"):
        build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "nope")))
    with pytest.raises(GanforgeError, match="data.path: the folder dataset needs"):
        build_dataset(cfg(tmp_path, name="folder"))
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(GanforgeError, match=r"no images .* under .*empty"):
        build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "empty")))
    make_folder(tmp_path / "img")
    (tmp_path / "img" / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(GanforgeError, match=r"broken.jpg: cannot read this image .*data.skip_corrupt=true"):
        build_dataset(cfg(tmp_path, name="folder", path=str(tmp_path / "img"), resolution=8))
    c = cfg(tmp_path, name="folder", path=str(tmp_path / "img"), resolution=8, skip_corrupt=True)
    for _ in range(2):  # built, then from the cache: both report the skip
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable image"):
            d = build_dataset(c)
        assert len(d) == 5 and d.info["skipped"] == 1 and "broken.jpg" in d.info["skipped_files"][0]


def test_convert_channels_rules():
    rgba = np.array([[[255, 0, 0, 128]]], np.uint8)  # half-transparent red
    assert folder.convert_channels(rgba, 3).tolist() == [[[255, 127, 127]]]
    grey = np.array([[[7]]], np.uint8)
    assert folder.convert_channels(grey, 4).tolist() == [[[7, 7, 7, 255]]]
    rgb = np.array([[[10, 200, 30]]], np.uint8)
    assert folder.convert_channels(rgb, 1)[0, 0, 0] == np.asarray(Image.fromarray(rgb).convert("L"))[0, 0]


# ---------------------------------------------------------------------------------------------------
# vectors


def test_vectors_npy_npz_csv(tmp_path):
    a = np.random.default_rng(4).normal(size=(10, 3))
    np.save(tmp_path / "v.npy", a)
    d = build_dataset(cfg(tmp_path, name="vectors", path=str(tmp_path / "v.npy"), max_items=4))
    assert d.kind == "vector" and d.x.dtype == torch.float32 and d.x.shape == (4, 3) and d.labels is None
    np.savez(tmp_path / "s.npz", samples=a.astype(np.float32), labels=np.arange(10) % 2)
    d = build_dataset(cfg(tmp_path, name="vectors", path=str(tmp_path / "s.npz")))
    assert d.x.shape == (10, 3) and d.labels.tolist() == [0, 1] * 5
    (tmp_path / "h.csv").write_text("x, y ,label\n1,2,cat\n\n3.5,-4e-1,dog\n5,6,cat\n")
    d = build_dataset(cfg(tmp_path, name="vectors", path=str(tmp_path / "h.csv")))
    assert d.x.tolist() == [[1, 2], [3.5, -0.4000000059604645], [5, 6]]
    assert d.labels.tolist() == [0, 1, 0] and d.class_names == ["cat", "dog"] and d.info["columns"] == ["x", "y"]
    (tmp_path / "n.csv").write_text("1,2\n3,4\n")
    d = build_dataset(cfg(tmp_path, name="vectors", path=str(tmp_path / "n.csv")))
    assert d.x.tolist() == [[1, 2], [3, 4]] and d.labels is None


@pytest.mark.parametrize("name, content, match", [
    ("bad.csv", "a,b\n1,2\n3,x\n", r"line 3, column 2 \('b'\): 'x' is not a number"),
    ("nan.csv", "1,2\n3,nan\n", r"line 2, column 2 .* NaN, infinite"),
    ("inf.csv", "1,inf\n", r"line 1, column 2"),
    ("ragged.csv", "1,2\n3\n", r"line 2 has 1 values"),
    ("empty.csv", "", r"no data rows"),
    ("header.csv", "a,b\n", r"no data rows \(only a header\)"),
    ("v.txt", "1,2\n", r"unknown extension"),
])
def test_vectors_csv_errors(tmp_path, name, content, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(GanforgeError, match=match):
        build_dataset(cfg(tmp_path, name="vectors", path=str(tmp_path / name)))


@pytest.mark.parametrize("array, match", [
    (np.zeros(5), r"shape \[5\]; expected a 2-D array .*x\[:, None\]"),
    (np.zeros((2, 2, 2)), r"expected a 2-D array"),
    (np.zeros((0, 3)), r"is empty"),
    (np.array([[1.0, np.inf]]), r"holds inf at row 0, column 1"),
    (np.array([[1.0], [np.nan]]), r"holds nan at row 1, column 0"),
    (np.array([["a"]]), r"dtype <U1"),
    (np.array([[None]], dtype=object), r"cannot load it as a NumPy file"),
])
def test_vectors_npy_errors(tmp_path, array, match):
    np.save(tmp_path / "a.npy", array, allow_pickle=True)
    with pytest.raises(GanforgeError, match=match):
        build_dataset(cfg(tmp_path, name="vectors", path=str(tmp_path / "a.npy")))
