"""Walk the latent space of a trained generator: rows of samples between pairs of seeds, saved as one PNG.

    python examples/interpolate.py --run runs/digits-000          # a run you trained before
    python examples/interpolate.py                                 # trains digits for 60 kimg first (a minute or two)
    python examples/interpolate.py --tiny --out /tmp/ex            # seconds: a smoke test (or GANFORGE_EXAMPLE_TINY=1)

`interpolate` follows a great circle between the two latents for the normal prior (spherical interpolation keeps
the latents at a typical norm) and a straight line for the uniform prior. Writes OUT/interpolation.png.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import ganforge

TINY = ["data.resolution=8", "model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch=16",
        "train.kimg=0.256", "train.tick_kimg=0.128", "train.ema_kimg=0.1", "train.grid_size=16",
        "train.metrics=[]"]  # no per-tick classifier metrics in a smoke run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="an existing run directory (default: train one first)")
    p.add_argument("--kimg", type=float, default=60, help="training length when no --run is given")
    p.add_argument("--pairs", type=int, default=6, help="rows: seed i -> seed i + 1")
    p.add_argument("--steps", type=int, default=10, help="samples a row, both ends included")
    p.add_argument("--out", default="runs/example-interpolate", help="folder for the picture (and the run)")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("GANFORGE_EXAMPLE_TINY") == "1",
                   help="a budget of seconds, for a smoke test")
    a = p.parse_args()
    out = Path(a.out)

    run_dir = a.run
    if run_dir is None:
        overrides = TINY if a.tiny else [f"train.kimg={a.kimg}", f"train.tick_kimg={a.kimg / 4}"]
        run_dir = ganforge.train("digits", overrides=overrides, out=out / "run", progress=not a.tiny)
    g = ganforge.load(run_dir)
    if g.kind != "image":
        sys.exit(f"{run_dir} holds a generator of vectors; this example draws images")

    rows = [g.interpolate(steps=a.steps, seed=i, seed_to=i + 1) for i in range(a.pairs)]  # each uint8 [steps, H, W, C]
    grid = np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)       # [pairs * H, steps * W, C]
    pic = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    scale = max(1, 64 // rows[0].shape[1])  # small images are scaled up so the picture is legible
    out.mkdir(parents=True, exist_ok=True)
    pic.resize((pic.width * scale, pic.height * scale), Image.NEAREST).save(out / "interpolation.png")
    print(f"{a.pairs} rows x {a.steps} steps from {run_dir} -> {out / 'interpolation.png'}")


if __name__ == "__main__":
    try:
        main()
    except ganforge.GanforgeError as e:
        sys.exit(f"error: {e}")
