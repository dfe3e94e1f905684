"""Train a preset briefly, load the exported generator, sample it, and save the samples as one PNG grid.

    python examples/train_and_sample.py                       # digits, 60 kimg: a minute or two on a laptop CPU
    python examples/train_and_sample.py --tiny --out /tmp/ex  # a few seconds: a smoke test (or GANFORGE_EXAMPLE_TINY=1)

Writes OUT/run/ (the run directory: log, sample grids per tick, checkpoints, exported generator) and OUT/grid.png.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import ganforge

# A smoke-test budget: 8x8 digits, narrow nets, 384 images.
TINY = ["data.resolution=8", "model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch=16",
        "train.kimg=0.384", "train.tick_kimg=0.128", "train.ema_kimg=0.1", "train.grid_size=16",
        "train.metrics=[]"]  # no per-tick classifier metrics in a smoke run


def save_grid(images: np.ndarray, path: Path, cols: int = 8, scale: int = 4) -> None:
    """uint8 [N, H, W, C] -> one PNG, `cols` samples a row, each pixel scaled up `scale` times."""
    n, h, w, c = images.shape
    rows = -(-n // cols)
    canvas = np.zeros((rows * h, cols * w, c), dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, cols)
        canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = img
    pic = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    pic.resize((pic.width * scale, pic.height * scale), Image.NEAREST).save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="digits", help="an image preset (see `ganforge presets`)")
    p.add_argument("--kimg", type=float, default=60, help="training length in thousands of images")
    p.add_argument("--out", default="runs/example-train-and-sample", help="folder for the run and the grid")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("GANFORGE_EXAMPLE_TINY") == "1",
                   help="a budget of seconds, for a smoke test")
    a = p.parse_args()
    out = Path(a.out)

    overrides = TINY if a.tiny else [f"train.kimg={a.kimg}", f"train.tick_kimg={a.kimg / 4}"]
    run_dir = ganforge.train(a.preset, overrides=overrides, out=out / "run", progress=not a.tiny)

    g = ganforge.load(run_dir)        # reads only run_dir/generator/: no dataset, no training code
    if g.kind != "image":
        sys.exit(f"{a.preset} is not an image preset; this example saves an image grid")
    images = g.sample(64, seed=0)     # uint8 [64, H, W, C]; the same 64 images for seed 0, every time
    save_grid(images, out / "grid.png")
    print(f"run directory: {run_dir}\nsamples {images.shape} {images.dtype} -> {out / 'grid.png'}")


if __name__ == "__main__":
    try:
        main()
    except ganforge.GanforgeError as e:  # a user error: one clear line, no traceback
        sys.exit(f"error: {e}")
