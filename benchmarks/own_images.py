"""Your own images: a folder of Fashion-MNIST PNGs for `ganforge train DIR`, and small data with and without
differentiable augmentation.

    python benchmarks/own_images.py pngs /tmp/fashion-pngs                 # 60,000 flat, unlabelled PNGs
    python benchmarks/own_images.py pngs /tmp/f100k --n 100000 --size 64 --rgb   # a 100k-image 64 px folder
    python benchmarks/own_images.py small-data --n 2000 --seeds 0,1,2 --kimg 300 --out /tmp/small
    python benchmarks/own_images.py memory /tmp/f100k --minutes 2         # peak memory, disk vs memory storage

`pngs` reads the IDX files (Debian's dataset-fashion-mnist, or data.path) and writes one PNG per image, no class
subfolders, so the folder preset sees what a user's unlabelled folder looks like (--n beyond 60,000 repeats the
images, mirrored on every second pass; --size scales them with the loaders' Lanczos filter).
`small-data` trains the `fashion` preset on the first N training images with augmentation off and on
(DiffAugment color/translation/cutout, ADA's adaptive p, or --fixed-p) for the same kimg, seed by seed, then judges each
run against the FULL 10,000-image test split with the domain classifier (domain_fd, class_kl; 10,000 samples),
and prints a Markdown table and the p trajectory.
`memory` trains `ganforge train DIR` with data.storage=disk and =memory in child processes and prints each one's
peak memory: anonymous (what the process holds; sampled every 10 ms from /proc) and peak resident (VmHWM,
libraries and mapped files included), with the preprocessing time and the training speed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ganforge
from ganforge.config import DataConfig
from ganforge.data import build_dataset
from ganforge.evaluation import evaluate_target
from ganforge.utils.device import cpu_description

AUG = ["augment.policy=[color,translation,cutout]", "augment.adaptive=true"]  # --fixed-p P: p fixed instead


def pngs(a) -> None:
    data = build_dataset(DataConfig(name="fashion", split="train", resolution=a.size))
    x = data.x.numpy()  # [N, 1, H, W]
    out = Path(a.dir)
    out.mkdir(parents=True, exist_ok=True)
    n = a.n or len(x)
    for i in range(n):
        img = x[i % len(x), 0]
        if (i // len(x)) % 2:
            img = img[:, ::-1]
        im = Image.fromarray(np.ascontiguousarray(img), "L")
        (im.convert("RGB") if a.rgb else im).save(out / f"{i:06d}.png")
    print(f"wrote {n} PNGs ({img.shape[1]}x{img.shape[0]}, {'RGB' if a.rgb else 'grey'}) to {out}")


def small_data(a) -> None:
    root = Path(a.out or tempfile.mkdtemp(prefix="ganforge-small-"))
    base = [f"data.max_items={a.n}", f"train.kimg={a.kimg}", f"optim.lr_kimg={a.kimg}",
            f"train.tick_kimg={a.kimg / 10:g}"] + a.set
    print(f"# {cpu_description()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; fashion preset on the first {a.n} training images, {a.kimg:g} kimg; judged against "
          "the full test split (10,000 samples)")
    print("| augmentation | seed | domain_fd | class_kl | final p |")
    print("|---|---|---|---|---|")
    trajectories = {}
    for seed in [int(s) for s in a.seeds.split(",")]:
        aug = AUG if a.fixed_p is None else [AUG[0], "augment.adaptive=false", f"augment.p={a.fixed_p}"]
        for name, extra in (("off", []), ("on", aug)):
            out = root / f"{name}-s{seed}"
            if not (out / "generator").is_dir():
                ganforge.train("fashion", overrides=base + extra + [f"train.seed={seed}"], out=out, progress=False)
            res = evaluate_target(out, ["domain_fd", "class_kl"], n=10_000, seed=0,
                                  data_overrides=["data.split=test", "data.max_items=0"])
            ticks = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"tick"' in x]
            p = [t.get("aug_p", 0.0) for t in ticks]
            trajectories[(name, seed)] = [(t["kimg"], t.get("aug_p", 0.0)) for t in ticks]
            v = {k: x for r in res.values() for k, x in r.values.items()}
            print(f"| {name} | {seed} | {v['domain_fd']:.2f} | {v['class_kl']:.4f} | {p[-1]:.3f} |", flush=True)
    print(f"\naugmentation: {' '.join(aug)}\np over training (kimg: p), augmentation on:")
    for (name, seed), tr in trajectories.items():
        if name == "on":
            print(f"  seed {seed}: " + ", ".join(f"{k:.0f}: {p:.2f}" for k, p in tr))
    print(f"runs kept in {root}")


WATCH = """import sys, threading, time
peak = [0]
def watch():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak[0] = max(peak[0], int(line.split()[1]) * 1024)
        time.sleep(0.01)
threading.Thread(target=watch, daemon=True).start()
from ganforge.cli import main
code = main(sys.argv[1:])
hwm = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM:")][0]
print("PEAK", peak[0], hwm, file=sys.stderr)
sys.exit(code)"""


def memory(a) -> None:
    root = Path(a.out or tempfile.mkdtemp(prefix="ganforge-memory-"))
    n = len([p for p in Path(a.dir).iterdir() if p.suffix == ".png"])
    print(f"# {cpu_description()}, {os.environ.get('OMP_NUM_THREADS', 'all')} threads; "
          f"{n} images in {a.dir}; ganforge train DIR --minutes {a.minutes:g}")
    print("| data.storage | start-up + preprocessing s | peak anonymous MiB | peak resident MiB | img/s |")
    print("|---|---|---|---|---|")
    for storage in ("disk", "memory"):
        out = root / storage
        cmd = [sys.executable, "-c", WATCH, "train", a.dir, "--quiet", "--out", str(out), "--minutes",
               str(a.minutes), "--set", f"data.storage={storage}", "--set", f"data.cache_dir={root / 'cache'}"]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(r.stderr[-3000:])
        peak, hwm = (int(v) for v in r.stderr.split("PEAK")[-1].split())
        ticks = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines() if '"tick"' in x]
        prep = time.time() - t0 - ticks[-1]["time_s"]
        speed = ticks[-1]["nimg"] / ticks[-1]["time_s"]
        print(f"| {storage} | {prep:.0f} | {peak / 2**20:.0f} | {hwm / 2**20:.0f} | {speed:.0f} |", flush=True)
    print(f"runs kept in {root}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pngs")
    p.add_argument("dir")
    p.add_argument("--n", type=int, default=0, help="how many (default: all 60,000)")
    p.add_argument("--size", type=int, default=0, help="scale to this size (default: native 28)")
    p.add_argument("--rgb", action="store_true", help="write RGB files (grey repeated)")
    s = sub.add_parser("small-data")
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--kimg", type=float, default=300)
    s.add_argument("--seeds", default="0,1,2")
    s.add_argument("--out", default=None)
    s.add_argument("--set", action="append", default=[])
    s.add_argument("--fixed-p", type=float, default=None, help="augment with this fixed p (default: ADA's adaptive p)")
    m = sub.add_parser("memory")
    m.add_argument("dir")
    m.add_argument("--minutes", type=float, default=2)
    m.add_argument("--out", default=None)
    a = ap.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    {"pngs": pngs, "small-data": small_data, "memory": memory}[a.cmd](a)


if __name__ == "__main__":
    main()
