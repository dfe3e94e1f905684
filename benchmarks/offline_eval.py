"""Calibration of the offline metrics (no labels, no downloaded weights) against known answers.

    python benchmarks/offline_eval.py calibrate --data fashion        # conditions x metrics table
    python benchmarks/offline_eval.py calibrate --data digits
    python benchmarks/offline_eval.py series RUN_DIR                  # every checkpoint: ssl_fd vs domain_fd
    python benchmarks/offline_eval.py memorization RUN_DIR [RUN_DIR ...]

`calibrate` scores stand-ins for generators whose quality is known, in the order a metric must rank them:
the training images themselves (a perfect copier: the distances' floor, and the memorisation check must flag
it), held-out real images (a perfect generator), held-out images blurred (sigma 1 px), held-out images of half
the classes (mode dropping), each held-out image's pixels shuffled, uniform noise. The reference is the training
split (Fashion-MNIST: train 60k, held out: test 10k; digits, which has no split: a fixed random half each); the
held-out images are halved again: one half is made into the conditions, the other is the held-out set the
two-sample test and the memorisation check compare with.
`series` scores each checkpoint of one training run with the self-supervised FD and the label-based domain FD
and prints Spearman's rank correlation between them. `memorization` runs the check on runs' generators (their
training data as the reference, the dataset's test split as held-out data).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from ganforge.components import from_artefact  # noqa: E402
from ganforge.config import Config, apply_overrides  # noqa: E402
from ganforge.data import Data, build_dataset, data_key  # noqa: E402
from ganforge.evaluation import heldout_data  # noqa: E402
from ganforge.metrics import evaluate  # noqa: E402
from ganforge.models import build_models  # noqa: E402
from ganforge.sampling import generate  # noqa: E402
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402

COLUMNS = [("domain_fd", "domain_fd"), ("ssl_fd", "ssl_fd"), ("ssl_kid", "ssl_kid"), ("ssl_pr", "precision"),
           ("ssl_pr", "recall"), ("c2st", "c2st_auc"), ("memorization", "ct"), ("memorization", "copy_share")]


def blur(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Gaussian blur of uint8 images [N, C, H, W] (separable, reflect padding) -> uint8."""
    r = int(3 * sigma + 0.5)
    k = torch.exp(-torch.arange(-r, r + 1).float() ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    y = F.pad(x.float(), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    y = F.conv2d(y, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return y.round().clamp(0, 255).to(torch.uint8)


def shuffle_pixels(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Each image's pixel positions permuted independently (its intensity histogram kept, its structure gone)."""
    g = torch.Generator().manual_seed(seed)
    flat = x.flatten(2)                                     # [N, C, HW]
    perm = torch.stack([torch.randperm(flat.shape[2], generator=g) for _ in range(len(x))])
    return torch.gather(flat, 2, perm[:, None, :].expand_as(flat)).view_as(x)


def splits(name: str) -> tuple[Data, Data, str]:
    """(training reference, held-out, data key) for a dataset."""
    cfg = Config()
    apply_overrides(cfg, [f"data.name={name}"])
    data = build_dataset(cfg.data)
    held = heldout_data(cfg, data)
    if held is None:  # no split (digits): a fixed random half each
        perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
        a, b = perm[: len(data) // 2].sort().values, perm[len(data) // 2:].sort().values
        held = Data(data.x[b], "image", data.name, data.labels[b], data.class_names, {"split": "second half"})
        data = Data(data.x[a], "image", data.name, data.labels[a], data.class_names, {"split": "first half"})
    return data, held, data_key(cfg.data) + f"-{data.info.get('split')}"


def score(fake: torch.Tensor, real: Data, held: Data, key: str, names: list[str]) -> tuple[dict, float]:
    t0 = time.time()
    res = evaluate(fake, real, names, data_key=key, heldout=held, seed=0)
    return {(m, k): v for m, r in res.items() for k, v in r.values.items()}, time.time() - t0


def calibrate(a) -> None:
    real, held, key = splits(a.data)
    g = torch.Generator().manual_seed(1)
    # the held-out images in two halves: one is made into the conditions, the other is the metrics' held-out set
    # (a condition compared with its own images would be a copy of them)
    perm = torch.randperm(len(held), generator=g)
    half = len(held) // 2
    src, yard = perm[:half].sort().values, perm[half:].sort().values
    held, source = (Data(held.x[i], "image", held.name, held.labels[i], held.class_names, held.info)
                    for i in (yard, src))
    n = min(len(source), a.n)
    h = source.x[:n]
    conditions = {
        "training images": real.x[torch.randperm(len(real), generator=g)[:n]],
        "held-out real": h,
        "held-out, blurred": blur(h),
        "held-out, half the classes": source.x[source.labels < source.labels.max() // 2 + 1][:n],
        "held-out, pixels shuffled": shuffle_pixels(h),
        "uniform noise": torch.randint(0, 256, h.shape, generator=g, dtype=torch.uint8),
    }
    names = sorted({m for m, _ in COLUMNS})
    print(f"{a.data}: reference = {len(real)} training images ({real.info.get('split')}); {len(source)} held-out "
          f"images make the conditions ({n} samples each), {len(held)} others are the metrics' held-out set")
    print(f"{'condition':28s}" + "".join(f"{k[:11]:>12s}" for _, k in COLUMNS) + f"{'seconds':>9s}")
    rows = {}
    for name, fake in conditions.items():
        vals, secs = score(fake, real, held, key, names)
        rows[name] = vals
        print(f"{name:28s}" + "".join(f"{vals.get(c, float('nan')):12.4g}" for c in COLUMNS) + f"{secs:9.1f}",
              flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps({k: {f"{m}.{v}": x for (m, v), x in r.items()} for k, r in rows.items()},
                                           indent=1))


def _samples(path: Path, n: int, device: str) -> tuple[torch.Tensor, Data, object, dict]:
    ck = load_checkpoint(path)
    cfg = from_artefact(ck["config"], str(path))
    data = build_dataset(cfg.data)
    G = build_models(cfg.model, data.shape, data.kind)[0]
    G.load_state_dict(ck["G_ema"])
    G = G.eval().requires_grad_(False).to(device)
    with torch.no_grad():
        fake = generate(G, cfg.model, data.kind, n, seed=cfg.train.seed + 99, device=device)
    return fake.cpu(), data, cfg, ck


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = (torch.tensor(v).argsort().argsort().double() for v in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def series(a) -> None:
    rows = []
    for path in list_checkpoints(Path(a.run)):
        fake, data, cfg, ck = _samples(path, a.n, "cpu")
        held = heldout_data(cfg, data)
        t0 = time.time()
        res = evaluate(fake, data, ["domain_fd", "ssl_fd", "ssl_kid", "c2st"], data_key=data_key(cfg.data),
                       heldout=held, seed=0)
        row = dict(kimg=ck["nimg"] / 1000, **{k: v for r in res.values() for k, v in r.values.items()})
        rows.append(row)
        print(f"{row['kimg']:8g} kimg  domain_fd {row['domain_fd']:8.3f}  ssl_fd {row['ssl_fd']:8.3f}  "
              f"ssl_kid {row['ssl_kid']:8.4f}  c2st_auc {row['c2st_auc']:.3f}  ({time.time() - t0:.0f} s)", flush=True)
    d = [r["domain_fd"] for r in rows]
    for k in ("ssl_fd", "ssl_kid", "c2st_auc"):
        print(f"Spearman(domain_fd, {k}) over {len(rows)} checkpoints: {spearman(d, [r[k] for r in rows]):.3f}")


def memorization(a) -> None:
    for run in a.runs:
        path = list_checkpoints(Path(run))[-1]
        fake, data, cfg, ck = _samples(path, a.n, "cpu")
        held = heldout_data(cfg, data)
        t0 = time.time()
        r = evaluate(fake, data, ["memorization"], data_key=data_key(cfg.data), heldout=held, seed=0)["memorization"]
        v = r.values
        print(f"{run}: {len(data)} training images, {ck['nimg'] / 1000:g} kimg, {len(fake)} samples "
              f"({time.time() - t0:.0f} s)")
        print("  " + "  ".join(f"{k} {x:.4g}" for k, x in v.items()))
        if a.grids:
            from ganforge.evaluation import save_closest_pairs

            for p in save_closest_pairs(r, fake, data.x, Path(a.grids) / Path(run).name):
                print(f"  closest pairs: {p}")


def main(argv: list[str] | None = None) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=int, default=0)
    common.add_argument("--quick", action="store_true", help="tiny feature-network recipes: checks the script "
                        "runs, its numbers mean nothing (use a separate --cache)")
    common.add_argument("--cache", default=None, help="cache directory (default: $GANFORGE_CACHE or "
                        "~/.cache/ganforge)")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("calibrate", parents=[common])
    c.add_argument("--data", default="fashion")
    c.add_argument("--n", type=int, default=10000, help="samples per condition (at most the held-out count)")
    c.add_argument("--json", default=None, help="also write the table here")
    s = sub.add_parser("series", parents=[common])
    s.add_argument("run")
    s.add_argument("--n", type=int, default=10000)
    m = sub.add_parser("memorization", parents=[common])
    m.add_argument("runs", nargs="+")
    m.add_argument("--n", type=int, default=10000)
    m.add_argument("--grids", default=None, help="write the closest-pairs grids under this folder")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.cache:
        os.environ["GANFORGE_CACHE"] = a.cache
    if a.quick:
        from ganforge.metrics import domain, selfsup

        selfsup.STEPS, domain.MIN_STEPS, domain.EPOCHS = 10, 20, 1
    {"calibrate": calibrate, "series": series, "memorization": memorization}[a.cmd](a)


if __name__ == "__main__":
    main()
