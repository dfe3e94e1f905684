"""BiGAN / ALI on the 2-D toy sets: does the encoder learn to invert the generator?

Trains a preset with model.encoder=true (its own settings otherwise). On 2,500 held-out real points x it
reports, for three ways of getting a latent z from x, how often G(z) lands on the same mode as x, how often it
is a high-quality sample there (PacGAN's 3-std rule) and the mean distance |G(z) - x|. (Images: every way of
getting z, the BiGAN variants and an encoder fitted afterwards, on held-out digits and Fashion-MNIST, is
benchmarks/encoder.py.) The three ways:
  encoder     z = E(x), one forward pass (what BiGAN learns);
  projection  z by optimisation (`Generator.project`: 300 Adam steps, best of 16 random starts and E(x));
  chance      z drawn from the prior, unrelated to x (what "no inversion" scores).
The generator's own samples get PacGAN's toy metrics, to show the encoder did not cost sample quality.

    python benchmarks/bigan.py ring
    python benchmarks/bigan.py grid --seeds 0,1
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import ganforge  # noqa: E402
from ganforge.components import resolve  # noqa: E402
from ganforge.data import build_dataset  # noqa: E402
from ganforge.metrics.toy import toy_assign, toy_metrics  # noqa: E402


def agreement(name: str, x: np.ndarray, rec: np.ndarray) -> str:
    mode_x, _ = toy_assign(x, name)
    mode_r, hq_r = toy_assign(rec, name)
    same = (mode_x == mode_r).double().mean().item()
    good = ((mode_x == mode_r) & hq_r).double().mean().item()
    dist = float(np.linalg.norm(rec - x, axis=1).mean())
    return f"same mode {100 * same:5.1f}%, same mode and HQ {100 * good:5.1f}%, mean |G(z) - x| {dist:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", choices=["ring", "grid"])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="extra overrides")
    ap.add_argument("--n", type=int, default=2500)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="ganforge-bigan-"))
    for seed in [int(s) for s in a.seeds.split(",")]:
        over = ["model.encoder=true", f"train.seed={seed}", *a.set]
        t0 = time.time()
        run = ganforge.train(a.preset, overrides=over, out=root / f"{a.preset}-s{seed}", progress=False)
        wall = time.time() - t0
        g = ganforge.load(run)
        cfg = resolve(a.preset, [f"data.seed={1000 + seed}", f"data.n={a.n}"])  # fresh points, not the training set
        x = build_dataset(cfg.data).x.numpy()
        m = toy_metrics(g.sample(2500, seed=seed), a.preset)
        print(f"{a.preset} seed {seed} ({wall:.0f} s): samples: modes {m['modes']}, hq {100 * m['hq']:.1f}%, "
              f"reverse_kl {m['reverse_kl']:.3f}")
        z_enc = g.encode(x)
        with torch.no_grad():
            rec_enc = g.net(torch.from_numpy(z_enc)).numpy()
        print(f"  encoder     {agreement(a.preset, x, rec_enc)}")
        p = g.project(x, seed=seed)
        print(f"  projection  {agreement(a.preset, x, p.reconstructions)}")
        print(f"  chance      {agreement(a.preset, x, g.sample(len(x), seed=seed + 1))}", flush=True)
    print(f"runs kept in {root}")


if __name__ == "__main__":
    main()
