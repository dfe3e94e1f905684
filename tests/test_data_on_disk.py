"""Data larger than memory: the folder's images preprocessed once to disk and read per minibatch (data/disk.py,
DiskSampler): the same minibatches as host memory, exact resume, invalidation, and bounded memory."""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge.config import DataConfig
from ganforge.data import build_dataset
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint

from .conftest import ROOT

SMALL = ["model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.kimg=0.256", "train.tick_kimg=0.128",
         "train.grid_size=8", "train.precision=fp32", "train.ema_kimg=0.01", "train.metrics=[]", "train.batch=16",
         "augment.policy=[]"]


def _folder(d, n, size=16, labelled=False):
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = d / (f"c{i % 3}" if labelled else "")
        sub.mkdir(parents=True, exist_ok=True)
        a = (np.linspace(0, 255, size)[None, :, None] + rng.integers(0, 60, (size, size, 3))).clip(0, 255)
        Image.fromarray(a.astype(np.uint8)).save(sub / f"{i:05d}.png")
    return d


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    return _folder(tmp_path_factory.mktemp("disk") / "imgs", 96)


def test_disk_matches_memory_bit_for_bit_and_resumes_exactly(imgs, tmp_path):
    over = SMALL + [f"data.cache_dir={tmp_path / 'cache'}"]
    a = ganforge.train(str(imgs), overrides=over + ["data.storage=disk"], out=tmp_path / "a", progress=False)
    b = ganforge.train(str(imgs), overrides=over + ["data.storage=memory", "train.data_device=host"],
                       out=tmp_path / "b", progress=False)
    h = ganforge.train(str(imgs), overrides=over + ["data.storage=disk", "train.kimg=0.128"], out=tmp_path / "h",
                       progress=False)
    ganforge.train(resume=h, overrides=["train.kimg=0.256"], progress=False)
    ca, cb, ch = (load_checkpoint(list_checkpoints(r)[-1]) for r in (a, b, h))
    assert ca["nimg"] == 256  # 96 images, batch 16: the run crosses two epochs
    for k in ca["G_ema"]:
        assert torch.equal(ca["G_ema"][k], cb["G_ema"][k]), k
        assert torch.equal(ca["G_ema"][k], ch["G_ema"][k]), k
    (disk_dir,) = [p for p in (tmp_path / "cache" / "folder").iterdir() if p.is_dir()]
    assert {p.name for p in disk_dir.iterdir()} == {"images.u8", "labels.npy", "meta.json"}


def test_disk_copy_holds_labels_and_is_rebuilt_when_damaged_or_stale(tmp_path):
    d = _folder(tmp_path / "l", 12, size=8, labelled=True)
    cfg = DataConfig(name="folder", path=str(d), storage="disk", cache_dir=str(tmp_path / "c"))
    first = build_dataset(cfg)
    mem = build_dataset(DataConfig(name="folder", path=str(d), storage="memory", cache_dir=str(tmp_path / "c")))
    assert torch.equal(first.x, mem.x) and torch.equal(first.labels, mem.labels)
    assert first.class_names == ["c0", "c1", "c2"] and first.info["storage"] == "disk"
    assert build_dataset(cfg).info["cache"].startswith("loaded")
    (disk_dir,) = [p for p in (tmp_path / "c" / "folder").iterdir() if p.is_dir()]
    with open(disk_dir / "images.u8", "r+b") as f:
        f.truncate(100)  # damaged
    with pytest.warns(UserWarning, match="damaged preprocessed data"):
        again = build_dataset(cfg)
    assert again.info["cache"].startswith("built") and torch.equal(again.x, mem.x)
    (d / "c0" / "00000.png").unlink()  # the folder changed: a new copy, the old one is not reused
    assert len(build_dataset(cfg)) == 11


def test_an_unfinished_write_is_not_trusted(tmp_path):
    d = _folder(tmp_path / "u", 10, size=8)
    cfg = DataConfig(name="folder", path=str(d), storage="disk", cache_dir=str(tmp_path / "c"), max_items=0)
    build_dataset(cfg)
    (disk_dir,) = [p for p in (tmp_path / "c" / "folder").iterdir() if p.is_dir()]
    (disk_dir / "meta.json").unlink()  # as a kill before the last file of the write leaves it
    assert build_dataset(cfg).info["cache"].startswith("built")


def _watcher() -> str:
    """benchmarks/own_images.py's WATCH: ganforge's CLI in a child that reports its peak memory on stderr."""
    spec = importlib.util.spec_from_file_location("own_images", ROOT / "benchmarks" / "own_images.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.WATCH


def test_a_folder_larger_than_the_memory_cap_trains_within_it(tmp_path):
    """The test caps data memory at 8 MiB (data.memory_mb) for a folder of 36 MiB of decoded images: training
    picks the on-disk copy, and its peak memory (anonymous: what the process itself holds, sampled every 10 ms)
    stays below that of the same run holding the images in memory by most of the data's size."""
    d = _folder(tmp_path / "big", 3072, size=64)  # 3072 x 3 x 64 x 64 = 36 MiB decoded
    size = 3072 * 3 * 64 * 64
    cache = tmp_path / "cache"
    for storage in ("memory", "disk"):  # preprocess first: the runs below measure training, not decoding
        build_dataset(DataConfig(name="folder", path=str(d), storage=storage, cache_dir=str(cache)))
    peaks = {}
    for name, extra in (("memory", ["data.storage=memory"]), ("capped", ["data.memory_mb=8"])):
        sets = [a for kv in SMALL + [f"data.cache_dir={cache}", "train.kimg=0.512", "train.tick_kimg=0.256",
                                     *extra] for a in ("--set", kv)]
        cmd = [sys.executable, "-c", _watcher(), "train", str(d), "--quiet",
               "--out", str(tmp_path / name), *sets]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        peaks[name] = int(r.stderr.split("PEAK")[-1].split()[0])  # anonymous memory
        log = [json.loads(x) for x in (tmp_path / name / "log.jsonl").read_text().splitlines()]
        assert log[-1]["nimg"] == 512
    assert peaks["memory"] - peaks["capped"] > 0.7 * size, {k: v / 2**20 for k, v in peaks.items()}
