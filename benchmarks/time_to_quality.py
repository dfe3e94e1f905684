"""Time to quality: wall time of a preset's training to reach a metric target, fast path on vs off.

Speed that costs quality is no speed: this trains the same preset twice, `fast` (train.precision=auto,
train.channels_last=true, train.reuse_fakes=true) and `plain` (fp32, default layout, a fresh G(z) for G's step),
keeps every tick's checkpoint, then scores each
checkpoint's G_ema with a ganforge metric (default `domain_fd`, the Frechet distance in the features of a
classifier trained on the dataset itself: see ganforge.metrics.domain) and prints, per mode, the training time
(the log's time_s: tick overhead excluded) at which the metric first reached the target.

    python benchmarks/time_to_quality.py                       # digits preset, full length
    python benchmarks/time_to_quality.py --kimg 100 --threads 1
    python benchmarks/time_to_quality.py --target 5.0          # a fixed target instead of the automatic one

The automatic target is 1.25 x the worse of the two runs' best values, so both reach it and the question is
who gets there first. Lower is better for the distance metrics this is meant for (domain_fd, fid, kid).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import ganforge  # noqa: E402
from ganforge.components import from_artefact  # noqa: E402
from ganforge.data import build_dataset, data_key  # noqa: E402
from ganforge.metrics import evaluate  # noqa: E402
from ganforge.models import build_models  # noqa: E402
from ganforge.sampling import generate  # noqa: E402
from ganforge.training.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402

MODES = {"plain": ["train.precision=fp32", "train.channels_last=false", "train.reuse_fakes=false"],
         "fast": ["train.precision=auto", "train.channels_last=true", "train.reuse_fakes=true"]}


def curve(run_dir: Path, metric: str, n: int, device: str) -> list[dict]:
    """[{kimg, time_s, value}] for every checkpoint of a run."""
    times = {r["nimg"]: r["time_s"] for r in map(json.loads, (run_dir / "log.jsonl").read_text().splitlines())
             if r.get("event") == "tick"}
    out, data = [], None
    for path in list_checkpoints(run_dir):
        ck = load_checkpoint(path)
        cfg = from_artefact(ck["config"], str(path))
        data = data or build_dataset(cfg.data)
        G = build_models(cfg.model, data.shape, data.kind)[0]
        G.load_state_dict(ck["G_ema"])
        G = G.eval().requires_grad_(False).to(device)
        with torch.no_grad():
            fake = generate(G, cfg.model, data.kind, n, seed=cfg.train.seed + 99, device=device)
        res = evaluate(fake, data, [metric], n=n, seed=cfg.train.seed, device=device, data_key=data_key(cfg.data))
        value = next(iter(res[metric].values.values()))
        out.append({"kimg": ck["nimg"] / 1000, "time_s": times.get(ck["nimg"], float("nan")), "value": value})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="digits")
    p.add_argument("--kimg", type=float, default=None, help="training length (default: the preset's)")
    p.add_argument("--tick-kimg", type=float, default=None, help="checkpoint spacing (default: the preset's)")
    p.add_argument("--metric", default="domain_fd")
    p.add_argument("--n", type=int, default=2000, help="generated samples (and real items, at most) per score")
    p.add_argument("--target", type=float, default=None, help="metric target (default: automatic, see above)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    p.add_argument("--out", default=None, help="keep the runs here (default: a temporary folder)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    from ganforge.metrics import METRICS

    if a.metric not in METRICS.names():
        p.error(f"--metric {a.metric!r} is not available; ganforge.metrics provides: {', '.join(METRICS.names())}")
    base = list(a.set) + ["train.keep_checkpoints=0", f"train.device={a.device}"]
    if a.kimg:
        base.append(f"train.kimg={a.kimg}")
    if a.tick_kimg:
        base.append(f"train.tick_kimg={a.tick_kimg}")
    root = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="ganforge-ttq-"))
    curves, precision = {}, {}
    for mode, over in MODES.items():
        run = ganforge.train(a.preset, overrides=base + over, out=root / mode, progress=False)
        ticks = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        precision[mode] = next((t["precision"] for t in ticks if "precision" in t), "?")
        device = "cuda" if a.device == "auto" and torch.cuda.is_available() else ("cpu" if a.device == "auto"
                                                                                  else a.device)
        curves[mode] = curve(run, a.metric, a.n, device)
        print(f"{mode:6s} trained: {ticks[-1]['kimg']} kimg in {ticks[-1]['time_s']} s ({precision[mode]})",
              flush=True)
    target = a.target if a.target is not None else 1.25 * max(min(c["value"] for c in cv) for cv in curves.values())

    print(f"\n{a.preset}: {a.metric} per checkpoint (n={a.n}); target {a.metric} <= {target:.4g}"
          f"{'' if a.target is not None else ' (automatic: 1.25 x the worse best value)'}")
    for mode, cv in curves.items():
        print(f"  {mode:6s} " + "  ".join(f"{c['kimg']:g}k:{c['value']:.3g}" for c in cv))
    print(f"\n{'mode':>6} {'precision':>9} {'best ' + a.metric:>16} {'final':>10} {'kimg to target':>15} "
          f"{'time to target':>15} {'img/s':>8}")
    hit = {}
    for mode, cv in curves.items():
        first = next((c for c in cv if c["value"] <= target), None)
        hit[mode] = first["time_s"] if first else float("nan")
        speed = cv[-1]["kimg"] * 1000 / cv[-1]["time_s"]
        print(f"{mode:>6} {precision[mode]:>9} {min(c['value'] for c in cv):>16.4g} {cv[-1]['value']:>10.4g} "
              f"{(first['kimg'] if first else float('nan')):>15g} {hit[mode]:>14.1f}s {speed:>8.0f}")
    if all(v == v for v in hit.values()):
        print(f"\nfast path: {hit['plain'] / hit['fast']:.2f}x less wall time to the target")
    print(f"runs kept in {root}")


if __name__ == "__main__":
    main()
