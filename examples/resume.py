"""Train for a number of images, then resume the run and extend it: the continuation is exact.

    python examples/resume.py                        # digits: 30 kimg, then resumed to 60 (a minute or two)
    python examples/resume.py --tiny --out /tmp/ex   # seconds: a smoke test (or GANFORGE_EXAMPLE_TINY=1)

`train.kimg` is the total length of a run, not the length of a segment: to extend a run, resume it with a larger
`train.kimg`. Resuming restores weights, optimiser states, the moving average, the image counter, the data order and
the random state, so the resumed run continues the same sequence as one that never stopped.
"""
import argparse
import json
import os
import sys
from pathlib import Path

import ganforge

TINY = ["data.resolution=8", "model.z_dim=8", "model.g_width=8", "model.d_width=8", "train.batch=16",
        "train.tick_kimg=0.128", "train.ema_kimg=0.1", "train.grid_size=16",
        "train.metrics=[]"]  # no per-tick classifier metrics in a smoke run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/example-resume", help="folder for the run")
    p.add_argument("--tiny", action="store_true", default=os.environ.get("GANFORGE_EXAMPLE_TINY") == "1",
                   help="a budget of seconds, for a smoke test")
    a = p.parse_args()
    first, total = (0.128, 0.256) if a.tiny else (30, 60)
    base = TINY if a.tiny else [f"train.tick_kimg={first / 3:g}"]

    # 1. A first segment: the run stops at `first` kimg with a checkpoint and an exported generator.
    run_dir = ganforge.train("digits", overrides=base + [f"train.kimg={first}"], out=Path(a.out) / "run",
                             progress=not a.tiny)
    print(f"trained {first} kimg in {run_dir}")

    # 2. Resuming a finished run without a new length is refused with a message that says what to do.
    try:
        ganforge.train(resume=run_dir, progress=False)
    except ganforge.GanforgeError as e:
        print(f"as expected: {e}")

    # 3. Extend it: resume from the newest checkpoint to a new total length. Optimiser and training settings
    #    (learning rates, loss, ...) may change here too; data and model settings may not.
    ganforge.train(resume=run_dir, overrides=[f"train.kimg={total}"], progress=not a.tiny)

    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    for rec in log:
        if rec["event"] == "resume":
            print(f"  resumed at {rec['kimg']:.3f} kimg from {rec['from']}")
        else:
            print(f"  tick {rec['tick']:3d}  {rec['kimg']:8.3f} kimg  loss_d {rec['loss_d']:.4f}  "
                  f"loss_g {rec['loss_g']:.4f}")
    print(f"now at {log[-1]['kimg']} kimg; samples: {ganforge.sample(run_dir, 4, seed=0).shape}")


if __name__ == "__main__":
    try:
        main()
    except ganforge.GanforgeError as e:
        sys.exit(f"error: {e}")
