"""Mode coverage on stacked digits (1,000 modes): train configurations, count the modes their generators cover.

The Stacked-MNIST benchmark of VEEGAN (Srivastava et al. 2017), PacGAN (Lin et al. 2018) and R3GAN (Huang et al.
2024), built from scikit-learn's 8x8 digits (`data.name=stacked-digits`): three digits as R, G, B, a mode is the
triple of classes. Each configuration is a named list of overrides applied on top of a preset (`--preset`,
default `digits`: its model and training settings) with `data.name=stacked-digits`; `--set` overrides apply to
every configuration, after its own. Each trained generator draws `--n` samples (26,000, as in the papers), a digit
classifier reads each channel, and the table reports the modes covered (of 1,000), KL(p_fake || uniform) in nats,
that KL split into the channels' own KLs and their dependence, the modes with fewer than 5 samples, and the
classifier's held-out accuracy (ganforge.metrics.stacked).

    python benchmarks/stacked.py                                  # the digits preset's settings, seed 0
    python benchmarks/stacked.py --seeds 0,1,2 --out runs/stacked \\
        --config dcgan="model.arch=dcgan,loss.name=nonsaturating" \\
        --config pac2="model.pack=2"
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import ganforge  # noqa: E402
from ganforge.data import cache_dir  # noqa: E402
from ganforge.evaluation import evaluate_target  # noqa: E402
from ganforge.metrics.stacked import RARE, digit_classifier  # noqa: E402
from ganforge.utils.device import cpu_description  # noqa: E402

BASE = ["data.name=stacked-digits", "train.metrics=[stacked_modes]"]   # modes at every tick too (cheap)


def split_overrides(text: str) -> list[str]:
    """"a=1,b=[2,3],c=x" -> ["a=1", "b=[2,3]", "c=x"]: commas inside [...] or {...} do not split."""
    out, cur, depth = [], "", 0
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def parse_config(text: str) -> tuple[str, list[str]]:
    """"name=key=value,key=value" -> (name, overrides)."""
    name, sep, rest = text.partition("=")
    if not sep or not name.strip() or any(c in name for c in "/ "):
        raise SystemExit(f"--config {text!r}: expected NAME=key=value,key=value,...")
    overrides = split_overrides(rest)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise SystemExit(f"--config {name}: {bad[0]!r} is not a key=value override")
    return name.strip(), overrides


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", default=[], metavar="NAME=OVERRIDES",
                    help="a configuration: a name and comma-separated overrides (repeatable; default: the preset)")
    ap.add_argument("--preset", default="digits", help="the base preset (default: digits)")
    ap.add_argument("--set", action="append", default=[], help="an override for every configuration (repeatable)")
    ap.add_argument("--seeds", default="0", help="comma-separated train.seed values (default: 0)")
    ap.add_argument("--n", type=int, default=26_000, help="generated samples scored (default: 26,000, as the papers)")
    ap.add_argument("--minutes", type=float, default=None, help="wall-clock budget per run (default: none)")
    ap.add_argument("--device", default="cpu", help="device for sampling and scoring (default: cpu)")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    a = ap.parse_args()
    configs = [parse_config(c) for c in a.config] or [(a.preset, [])]
    names = [c[0] for c in configs]
    if len(set(names)) != len(names):
        raise SystemExit(f"--config: names must differ, got {', '.join(names)}")
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    root = Path(a.out or tempfile.mkdtemp(prefix="ganforge-stacked-"))
    print(f"# machine: {cpu_description()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; preset {a.preset} + data.name=stacked-digits; {a.n} samples per run")
    for name, overrides in configs:
        print(f"# {name}: {', '.join(overrides) or '(the preset)'}" + (f"; all: {', '.join(a.set)}" if a.set else ""))
    for res in sorted({ganforge.resolve_config(a.preset, BASE + o + a.set).data.resolution for _, o in configs}):
        _, p = digit_classifier(res, cache_dir(), a.device)   # trained (once, cached) before any run is timed
        print(f"# digit classifier at {res or 8}x{res or 8}: {p['classifier_accuracy']:.1%} of the "
              f"{p['classifier_n_test']} held-out digits, a whole triple {p['triple_accuracy']:.1%}")
    print(f"| config | seed | kimg | wall s | modes (of 1000) | reverse KL | marginal KL + dependence "
          f"| modes < {RARE} samples | classifier accuracy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, overrides in configs:
        for seed in seeds:
            out = root / f"{name}-s{seed}"
            t0 = time.time()
            run = ganforge.train(a.preset, overrides=BASE + overrides + a.set + [f"train.seed={seed}"], out=out,
                                 minutes=a.minutes, progress=False)
            wall = time.time() - t0
            last = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()][-1]
            r = evaluate_target(run, ["stacked_modes"], n=a.n, seed=0, device=a.device)["stacked_modes"]
            v, p = r.values, r.protocol
            warn = " (unreliable)" if "warning" in p else ""
            print(f"| {name} | {seed} | {last['kimg']:.3g} | {wall:.0f} | {v['modes']} | {v['reverse_kl']:.3f} | "
                  f"{v['marginal_kl']:.3f} + {v['dependence']:.3f} | {v['rare_modes']} | "
                  f"{p['classifier_accuracy']:.1%} (triple {p['triple_accuracy']:.1%}){warn} |", flush=True)
    print(f"runs kept in {root}")


if __name__ == "__main__":
    main()
