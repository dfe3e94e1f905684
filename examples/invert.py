"""Map data back into the latent space: a BiGAN encoder trained with the GAN, and projection by optimisation.

    python examples/invert.py                        # the ring preset with an encoder, 2000 kimg: about a minute
    python examples/invert.py --tiny --out /tmp/ex   # seconds: a smoke test (or GANFORGE_EXAMPLE_TINY=1)

Held-out points of the 8-mode ring go in; for each we get a latent z, generate G(z) and check whether it lies
on the same mode as the point. Random latents (no inversion) would land on the right mode 1 time in 8.
Measured here (2 CPU threads, 52 s): encoder 89.8%, projection 97.0%, random latents 11.2%.
"""
import argparse
import os
from pathlib import Path

import numpy as np

import ganforge

TINY = ["train.kimg=0.512", "train.tick_kimg=0.256", "train.batch=64", "model.g_width=16", "model.d_width=16",
        "model.depth=2", "train.metrics=[]"]


def ring_points(n: int, seed: int) -> np.ndarray:
    """The ring data: 8 Gaussians of std 0.01 on the unit circle (PacGAN's protocol). float32 [n, 2]."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * rng.integers(0, 8, n) / 8
    return (np.stack([np.cos(angle), np.sin(angle)], 1) + 0.01 * rng.standard_normal((n, 2))).astype(np.float32)


def mode_of(x: np.ndarray) -> np.ndarray:
    """Index of the nearest of the 8 modes, by angle."""
    return np.round(np.arctan2(x[:, 1], x[:, 0]) / (2 * np.pi / 8)).astype(int) % 8


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kimg", type=float, default=2000, help="training length in thousands of images")
    p.add_argument("--out", default="runs/example-invert", help="folder for the run")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("GANFORGE_EXAMPLE_TINY") == "1",
                   help="a budget of seconds, for a smoke test")
    a = p.parse_args()
    overrides = ["model.encoder=true"]  # BiGAN / ALI: learn E: x -> z next to G
    overrides += TINY if a.tiny else [f"train.kimg={a.kimg}", f"train.tick_kimg={a.kimg / 4}",
                                      f"optim.lr_kimg={a.kimg}"]
    run_dir = ganforge.train("ring", overrides=overrides, out=Path(a.out) / "run", progress=not a.tiny)
    g = ganforge.load(run_dir)

    x = ring_points(500, seed=123)  # points the model never saw
    z_enc = g.encode(x)                                   # one forward pass of the encoder
    proj = g.project(x, steps=100 if a.tiny else 300)    # search, starting from the best of E(x) and 16 random z
    z_rand = np.random.default_rng(0).standard_normal(z_enc.shape).astype(np.float32)
    for name, z in (("encoder", z_enc), ("projection", proj.z), ("random z", z_rand)):
        rec = g.decode(z)
        same = (mode_of(rec) == mode_of(x)).mean()
        print(f"{name:10s}: G(z) on the point's own mode for {100 * same:5.1f}% of {len(x)} points, "
              f"mean distance {np.linalg.norm(rec - x, axis=1).mean():.3f}")


if __name__ == "__main__":
    main()
