"""Your own images: a folder of Fashion-MNIST PNGs for `ganforge train DIR`, and small data with and without
differentiable augmentation.

    python benchmarks/own_images.py pngs /tmp/fashion-pngs                 # 60,000 flat, unlabelled PNGs
    python benchmarks/own_images.py pngs /tmp/f100k --n 100000 --size 64 --rgb   # a 100k-image 64 px folder
    python benchmarks/own_images.py small-data --n 2000 --seeds 0,1,2 --kimg 300 --out /tmp/small

`pngs` reads the IDX files (Debian's dataset-fashion-mnist, or data.path) and writes one PNG per image, no class
subfolders, so the folder preset sees what a user's unlabelled folder looks like (--n beyond 60,000 repeats the
images, mirrored on every second pass; --size scales them with the loaders' Lanczos filter).
`small-data` trains the `fashion` preset on the first N training images with augmentation off and on
(DiffAugment color/translation/cutout, ADA's adaptive p) for the same kimg, seed by seed, then judges each
run against the FULL 10,000-image test split with the domain classifier (domain_fd, class_kl; 10,000 samples),
and prints a Markdown table and the p trajectory.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import ganforge
from ganforge.config import DataConfig
from ganforge.data import build_dataset
from ganforge.evaluation import evaluate_target

AUG = ["augment.policy=[color,translation,cutout]", "augment.adaptive=true"]


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
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch "
          f"{torch.__version__}; fashion preset on the first {a.n} training images, {a.kimg:g} kimg; judged against "
          "the full test split (10,000 samples)")
    print("| augmentation | seed | domain_fd | class_kl | final p |")
    print("|---|---|---|---|---|")
    trajectories = {}
    for seed in [int(s) for s in a.seeds.split(",")]:
        for name, extra in (("off", []), ("on", AUG)):
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
    print("\np over training (kimg: p), augmentation on:")
    for (name, seed), tr in trajectories.items():
        if name == "on":
            print(f"  seed {seed}: " + ", ".join(f"{k:.0f}: {p:.2f}" for k, p in tr))
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
    a = ap.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    pngs(a) if a.cmd == "pngs" else small_data(a)


if __name__ == "__main__":
    main()
