"""Does the encoder invert the generator on images? Every way of getting z from a real image, side by side.

For a dataset (digits or fashion) it trains, or reuses from --out, these runs with the preset's own settings:
  plain        the preset (no encoder), to which encoders are fitted afterwards (`ganforge encoder`);
  bigan        model.encoder=true: BiGAN / ALI joint training, as before this benchmark existed;
  bigan-latent model.encoder=true, loss.latent_weight=1: + E(G(z)) ~ z in G's and E's step;
  bigan-cycle  model.encoder=true, loss.cycle_weight=1: + ALICE's G(E(x)) ~ x on real data.
Then, on held-out real images x (fashion: the test split; digits: the last --heldout of the 1,797 images, which
the digits runs here never train on: data.max_items), for each way of getting z it reports
  agree    how often the domain classifier (ganforge.metrics.domain, trained on the training images only) gives
           G(z) the class it gives x: does G(z) look like x where it matters;
  label    the same against x's true label (the classifier's own accuracy on x is printed as the ceiling);
  mse      mean squared error |G(z) - x|^2 in model range ([-1, 1]);
  ms/img   wall time per image of getting z (and G(z)), --threads CPU threads, batch 256.
Then each way that agrees about as often as projection is compared with it image by image (McNemar's exact
test on the images where exactly one of the two agrees): a p-value above 0.05 means no measurable difference.
The ways: each BiGAN's own E(x); on the plain run an encoder fitted afterwards (default settings; and with
--ablate the ablations: G's pairs only, real reconstruction only), E alone and E + refinement (Adam steps from
E(x)); projection (`Generator.project`: best of 16 random starts, 300 Adam steps); chance (z from the prior).

    python benchmarks/encoder.py digits
    python benchmarks/encoder.py fashion --kimg 500 --heldout 1000
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import ganforge  # noqa: E402
from ganforge.components import resolve  # noqa: E402
from ganforge.data import build_dataset, cache_dir, data_key, to_model_range  # noqa: E402
from ganforge.editing import fit_encoder  # noqa: E402
from ganforge.inversion import EncoderSettings  # noqa: E402
from ganforge.metrics.domain import domain_classifier, domain_features  # noqa: E402
from ganforge.sampling import load  # noqa: E402
from ganforge.utils.images import to_hwc  # noqa: E402

VARIANTS = {"plain": [], "bigan": ["model.encoder=true"],
            "bigan-latent": ["model.encoder=true", "loss.latent_weight=1"],
            "bigan-cycle": ["model.encoder=true", "loss.cycle_weight=1"]}
DIGITS = 1797


def train_or_reuse(preset: str, name: str, over: list[str], root: Path) -> Path:
    run = root / name
    if (run / "generator" / "model.safetensors").is_file():
        print(f"  reusing {run}", flush=True)
        return run
    t0 = time.time()
    ganforge.train(preset, overrides=over, out=run, progress=False)
    print(f"  trained {name} in {time.time() - t0:.0f} s", flush=True)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset", choices=["digits", "fashion"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout", type=int, default=300, help="held-out images to invert")
    ap.add_argument("--kimg", type=float, default=None, help="training length of every run (default: the preset's)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"runs to train, of {', '.join(VARIANTS)}")
    ap.add_argument("--refine", default="25,40,50,100", help="refinement steps from E(x) to report")
    ap.add_argument("--reuse-encoder", action="store_true",
                    help="use the encoder already fitted to the plain run (same settings) instead of fitting again")
    ap.add_argument("--ablate", action="store_true", help="also fit the ablated encoders")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every run")
    ap.add_argument("--encoder-steps", type=int, default=EncoderSettings.steps)
    ap.add_argument("--out", default=None, help="runs are kept (and reused) here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    root = Path(a.out or tempfile.mkdtemp(prefix=f"ganforge-encoder-{a.preset}-"))
    base = [f"train.seed={a.seed}", *a.set] + ([f"train.kimg={a.kimg}", f"optim.lr_kimg={a.kimg}"] if a.kimg else [])
    if a.preset == "digits":
        base.append(f"data.max_items={DIGITS - a.heldout}")
    print(f"{a.preset}, seed {a.seed}, runs in {root}:", flush=True)
    runs = {v: train_or_reuse(a.preset, v, VARIANTS[v] + base, root) for v in a.variants.split(",")}

    cfg = resolve(a.preset, base)
    train = build_dataset(cfg.data)
    if a.preset == "digits":
        every = copy.deepcopy(cfg.data)
        every.max_items = 0
        held = build_dataset(every)
        hx, hy = held.x[DIGITS - a.heldout:], held.labels[DIGITS - a.heldout:]
    else:
        test = copy.deepcopy(cfg.data)
        test.split, test.max_items = "test", 0
        held = build_dataset(test)
        hx, hy = held.x[: a.heldout], held.labels[: a.heldout]
    net, info = domain_classifier(train.x, train.labels, 10, data_key=data_key(cfg.data),
                                  cache=cache_dir(cfg.data.cache_dir))
    pred_x = domain_features(net, hx)["logits"].argmax(1)
    items = to_hwc(hx).numpy()
    target = to_model_range(hx, "image")
    print(f"  {len(hx)} held-out images; the classifier gives {100 * (pred_x == hy).double().mean():.1f}% of them "
          f"their label (its own held-out accuracy {100 * info.get('accuracy', float('nan')):.1f}%); "
          f"{torch.get_num_threads()} thread(s)")
    print(f"  {'method':28s} {'agree':>7s} {'label':>7s} {'mse':>8s} {'ms/img':>8s}")

    agreed: dict[str, torch.Tensor] = {}

    def row(name: str, g, how) -> None:
        t0 = time.perf_counter()
        rec = how(g)
        ms = 1000 * (time.perf_counter() - t0) / len(items)
        r = torch.from_numpy(rec).permute(0, 3, 1, 2).contiguous()
        pred = domain_features(net, r)["logits"].argmax(1)
        mse = (to_model_range(r, "image") - target).pow(2).mean().item()
        agreed[name] = pred == pred_x
        print(f"  {name:28s} {100 * (pred == pred_x).double().mean():6.1f}% {100 * (pred == hy).double().mean():6.1f}%"
              f" {mse:8.4f} {ms:8.2f}", flush=True)

    refine = [int(s) for s in a.refine.split(",") if s]
    for v, run in runs.items():
        if v == "plain":
            continue
        g = load(run)
        row(f"{v}: E(x)", g, lambda g: g.decode(g.encode(items)))
    if "plain" not in runs:
        return
    fits = {"fitted E": EncoderSettings(steps=a.encoder_steps)}
    if a.ablate:
        fits["fitted E, G's pairs only"] = EncoderSettings(steps=a.encoder_steps, real_weight=0.0)
        fits["fitted E, real images only"] = EncoderSettings(steps=a.encoder_steps, latent_weight=0.0,
                                                             fake_weight=0.0)
    keep = None
    for name, st in fits.items():
        t0 = time.time()
        g = load(runs["plain"])
        old = json.loads((runs["plain"] / "generator" / "encoder.json").read_text()) if g.encoder is not None else {}
        if a.reuse_encoder and name == "fitted E" and old.get("settings") == vars(st) and old.get("seed") == a.seed:
            print(f"  ({name}: reusing the one fitted in {old.get('seconds', '?')} s)", flush=True)
        else:
            fit_encoder(runs["plain"], st, seed=a.seed, figures=name == "fitted E")
            print(f"  ({name}: fitted in {time.time() - t0:.0f} s, {st.steps} steps of {st.batch})", flush=True)
        g = load(runs["plain"])
        row(f"{name}", g, lambda g: g.decode(g.encode(items)))
        if name != "fitted E":
            continue
        for k in refine:
            row(f"{name} + {k} steps", g, lambda g, k=k: g.decode(g.encode(items, refine=k)))
        keep = g
    if a.ablate:
        fit_encoder(runs["plain"], fits["fitted E"], seed=a.seed)   # the default one stays with the run
    g = load(runs["plain"])
    g.encoder = None   # projection alone: 16 random starts, without E(x)
    row("projection (16 x 300 steps)", g, lambda g: g.project(items, seed=a.seed).reconstructions)
    row("chance (z from the prior)", keep, lambda g: g.sample(len(items), seed=a.seed + 1))
    proj = agreed["projection (16 x 300 steps)"]
    print("  paired with projection (images where exactly one agrees):")
    for name, ok in agreed.items():
        if name.startswith("fitted E") and abs(ok.double().mean() - proj.double().mean()) < 0.05:
            only, other = int((ok & ~proj).sum()), int((proj & ~ok).sum())
            p = float(binomtest(only, only + other).pvalue) if only + other else 1.0
            print(f"    {name:26s} only it: {only:3d}, only projection: {other:3d}, McNemar exact p = {p:.2f}")
    print(f"  figures: {runs['plain'] / 'encoder'}")


if __name__ == "__main__":
    main()
