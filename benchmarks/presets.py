"""Train each built-in preset with its own settings and report wall time and quality, as a Markdown table.

    python benchmarks/presets.py ring grid digits            # the README's preset table
    python benchmarks/presets.py fashion --minutes 10

Quality: ring/grid use PacGAN's toy metrics (2,500 samples: modes, % high quality, reverse KL); image presets use
the domain-classifier metrics (Frechet distance in a classifier trained on the dataset's labels, and the KL of the
predicted class histogram to the real label distribution), plus FID/KID when the Inception weights are present.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import ganforge
from ganforge.evaluation import evaluate_target
from ganforge.utils.device import cpu_description


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("presets", nargs="+")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget per preset (default: none)")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every preset")
    ap.add_argument("--seeds", default="0", help="comma-separated train.seed values")
    a = ap.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="ganforge-presets-"))
    print(f"# machine: {cpu_description()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print("| preset | seed | kimg | wall s | metrics |")
    print("|---|---|---|---|---|")
    for name in a.presets:
        for seed in [int(s) for s in a.seeds.split(",")]:
            out = root / f"{name}-s{seed}"
            t0 = time.time()
            run = ganforge.train(name, overrides=a.set + [f"train.seed={seed}"], out=out, minutes=a.minutes,
                                 progress=False)
            wall = time.time() - t0
            last = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()][-1]
            res = evaluate_target(run, None, seed=0)
            vals = ", ".join(f"{k} {v:.4g}" for r in res.values() for k, v in r.values.items())
            print(f"| {name} | {seed} | {last['kimg']:.0f} | {wall:.0f} | {vals} |", flush=True)
    print(f"runs kept in {root}")


if __name__ == "__main__":
    main()
