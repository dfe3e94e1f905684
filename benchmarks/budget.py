"""Quality per minute: a ganforge preset against the classic single-file DCGAN script, at the same wall-clock budgets.

The reference is the DCGAN of PyTorch-GAN's `implementations/dcgan/dcgan.py` (Linder-Noren, MIT licence), written
here the way that script writes it, from its description: 32x32 images through a torchvision transform per item
(Resize, ToTensor, Normalize to [-1, 1]) and a shuffling DataLoader with the default 0 workers; latent 100 ~ N(0, 1);
G = Linear -> 128 x 8 x 8, BatchNorm, two (nearest 2x upsample, 3x3 conv, BatchNorm with eps 0.8 as the script's
positional argument makes it, LeakyReLU 0.2), 3x3 conv, tanh; D = four (3x3 stride-2 conv, LeakyReLU 0.2,
Dropout2d 0.25, BatchNorm eps 0.8 but in the first) and Linear + Sigmoid; weights N(0, 0.02), BatchNorm N(1, 0.02);
BCELoss, Adam lr 2e-4, betas (0.5, 0.999), batch 64; per batch one G step then one D step (the mean of the real
and fake BCE). It trains until the budget is spent (the clock starts before the models are built; reading the data
files does not count, as it does not for ganforge) and its last G is scored.

ganforge trains the preset with `--minutes M` (its schedules follow the budget: ganforge.training.budget). Both
are judged by the same call, `ganforge eval` on 10,000 samples (the reference's 32x32 samples resized to the
preset's resolution with Lanczos, the filter ganforge's loaders use) against the training images, with the
dataset's domain metrics: domain_fd and class_kl (ganforge.metrics.domain).

    python benchmarks/budget.py fashion --minutes 1,10 --seeds 0,1,2 --threads 2 --out runs/budget
    python benchmarks/budget.py digits --minutes 1,2,5 --systems reference --out runs/budget
    python benchmarks/budget.py fashion --plot docs/img/budget-fashion.png --out runs/budget   # plot what is there

Each result is appended to OUT/results.jsonl (system, preset, threads, minutes, seed, --set overrides, kimg,
metrics, CPU); rows already there with the same overrides are not run again, so budgets, seeds and thread counts
can be added over several calls (run them one at a time on an otherwise idle machine: wall-clock budgets measure
the machine). The table prints the mean and the range over seeds; --plot draws metric vs minutes for every system,
thread count and set of overrides found.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

import ganforge  # noqa: E402
from ganforge.components import resolve  # noqa: E402
from ganforge.data import build_dataset  # noqa: E402
from ganforge.evaluation import evaluate_target  # noqa: E402
from ganforge.utils.device import cpu_description  # noqa: E402

METRICS = ["domain_fd", "class_kl"]
SIZE, LATENT, BATCH = 32, 100, 64


class RefGenerator(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.init_size = SIZE // 4
        self.l1 = nn.Sequential(nn.Linear(LATENT, 128 * self.init_size ** 2))
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 128, 3, stride=1, padding=1),
            nn.BatchNorm2d(128, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, stride=1, padding=1),
            nn.BatchNorm2d(64, 0.8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, stride=1, padding=1),
            nn.Tanh(),
        )

    def forward(self, z):
        out = self.l1(z)
        out = out.view(out.shape[0], 128, self.init_size, self.init_size)
        return self.conv_blocks(out)


class RefDiscriminator(nn.Module):
    def __init__(self, channels: int):
        super().__init__()

        def discriminator_block(in_filters, out_filters, bn=True):
            block = [nn.Conv2d(in_filters, out_filters, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout2d(0.25)]
            if bn:
                block.append(nn.BatchNorm2d(out_filters, 0.8))
            return block

        self.model = nn.Sequential(
            *discriminator_block(channels, 16, bn=False),
            *discriminator_block(16, 32),
            *discriminator_block(32, 64),
            *discriminator_block(64, 128),
        )
        ds_size = SIZE // 2 ** 4
        self.adv_layer = nn.Sequential(nn.Linear(128 * ds_size ** 2, 1), nn.Sigmoid())

    def forward(self, img):
        out = self.model(img)
        out = out.view(out.shape[0], -1)
        return self.adv_layer(out)


def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        torch.nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm2d") != -1:
        torch.nn.init.normal_(m.weight.data, 1.0, 0.02)
        torch.nn.init.constant_(m.bias.data, 0.0)


class ImageSet(torch.utils.data.Dataset):
    """uint8 [N, C, H, W] images through the script's per-item torchvision transform."""

    def __init__(self, x: torch.Tensor):
        from torchvision import transforms

        self.x = x
        c = x.shape[1]
        self.transform = transforms.Compose([transforms.Resize(SIZE), transforms.ToTensor(),
                                             transforms.Normalize([0.5] * c, [0.5] * c)])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image

        a = self.x[i].permute(1, 2, 0).numpy()
        img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
        return self.transform(img), 0


def train_reference(x: torch.Tensor, minutes: float, seed: int) -> tuple[nn.Module, int]:
    """The script's loop for `minutes` of wall-clock time -> (G, images shown to D)."""
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    channels = x.shape[1]
    generator, discriminator = RefGenerator(channels), RefDiscriminator(channels)
    adversarial_loss = torch.nn.BCELoss()
    generator.apply(weights_init_normal)
    discriminator.apply(weights_init_normal)
    dataloader = torch.utils.data.DataLoader(ImageSet(x), batch_size=BATCH, shuffle=True)
    optimizer_G = torch.optim.Adam(generator.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizer_D = torch.optim.Adam(discriminator.parameters(), lr=0.0002, betas=(0.5, 0.999))
    seen = 0
    while True:
        for imgs, _ in dataloader:
            valid = torch.ones(imgs.size(0), 1)
            fake = torch.zeros(imgs.size(0), 1)
            real_imgs = imgs
            optimizer_G.zero_grad()
            z = torch.randn(imgs.shape[0], LATENT)
            gen_imgs = generator(z)
            g_loss = adversarial_loss(discriminator(gen_imgs), valid)
            g_loss.backward()
            optimizer_G.step()
            optimizer_D.zero_grad()
            real_loss = adversarial_loss(discriminator(real_imgs), valid)
            fake_loss = adversarial_loss(discriminator(gen_imgs.detach()), fake)
            d_loss = (real_loss + fake_loss) / 2
            d_loss.backward()
            optimizer_D.step()
            seen += imgs.size(0)
            if time.perf_counter() - t0 >= 60 * minutes:
                return generator.eval(), seen


@torch.no_grad()
def reference_samples(G: nn.Module, n: int, shape: tuple[int, int, int], seed: int) -> np.ndarray:
    """n samples as uint8 [n, H, W, C] at the dataset's shape (Lanczos from 32x32)."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed + 99)
    out = []
    for s in range(0, n, 500):
        z = torch.randn(min(500, n - s), LATENT, generator=g)
        x = ((G(z).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for a in x:
            img = Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)
            img = np.asarray(img.resize((shape[2], shape[1]), Image.LANCZOS))
            out.append(img[..., None] if img.ndim == 2 else img)
    return np.stack(out)


def run_one(system: str, preset: str, minutes: float, seed: int, out: Path, n: int, overrides: list[str]) -> dict:
    cfg = resolve(preset, overrides)
    data_over = [f"data.name={cfg.data.name}", f"data.resolution={cfg.data.resolution}"]
    if cfg.data.path:
        data_over.append(f"data.path={cfg.data.path}")
    folder = out / (f"{system}-{preset}-t{torch.get_num_threads()}-m{minutes:g}-s{seed}"
                    + (f"-{hashlib.sha1(' '.join(overrides).encode()).hexdigest()[:8]}" if overrides else ""))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)  # a run that did not reach results.jsonl (interrupted): start it again
    t0 = time.time()
    if system == "ganforge":
        run = ganforge.train(preset, overrides=overrides + [f"train.seed={seed}"], out=folder, minutes=minutes,
                             progress=False)
        kimg = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()][-1]["kimg"]
        target, over = run, None
    else:
        data = build_dataset(cfg.data)
        G, seen = train_reference(data.x, minutes, seed)
        kimg = seen / 1000
        folder.mkdir(parents=True, exist_ok=True)
        target, over = folder / "samples.npz", data_over
        np.savez(target, images=reference_samples(G, n or 10000, tuple(data.x.shape[1:]), seed))
    wall = time.time() - t0
    res = evaluate_target(target, METRICS, n=n, seed=0, data_overrides=over)
    vals = {k: v for r in res.values() for k, v in r.values.items()}
    return dict(system=system, preset=preset, threads=torch.get_num_threads(), minutes=minutes, seed=seed,
                kimg=round(kimg, 1), wall_s=round(wall, 1), n=n, cpu=cpu_description(), set=overrides, **vals)


def _overrides(row: dict) -> str:
    """A result's --set overrides as one label ("" for none; rows written before --set existed have none)."""
    return " ".join(row.get("set", []))


def summarise(rows: list[dict]) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["threads"], r["minutes"], r["system"], _overrides(r)), []).append(r)
    print("| preset | threads | minutes | system | seeds | kimg | domain_fd mean (range) | class_kl mean (range) |")
    print("|---|---|---|---|---|---|---|---|")
    for (preset, threads, minutes, system, over), rs in sorted(groups.items()):
        system = f"{system} ({over})" if over and system == "ganforge" else system  # the reference takes no --set
        cells = []
        for m in METRICS:
            v = [r[m] for r in rs]
            cells.append(f"{np.mean(v):.3g} ({min(v):.3g}-{max(v):.3g})" if len(v) > 1 else f"{v[0]:.3g}")
        kimg = np.mean([r["kimg"] for r in rs])
        print(f"| {preset} | {threads} | {minutes:g} | {system} | {len(rs)} | {kimg:.0f} | " + " | ".join(cells) + " |")


def plot(rows: list[dict], path: Path, preset: str, seeds: list[int] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["preset"] == preset and (seeds is None or r["seed"] in seeds)]
    fig, axes = plt.subplots(1, len(METRICS), figsize=(5 * len(METRICS), 3.6))
    fewer: list[str] = []
    for ax, m in zip(axes, METRICS):
        for key in sorted({(r["system"], r["threads"], _overrides(r)) for r in rows}):
            rs = [r for r in rows if (r["system"], r["threads"], _overrides(r)) == key]
            mins = sorted({r["minutes"] for r in rs})
            vals = [[r[m] for r in rs if r["minutes"] == t] for t in mins]
            mean = [np.mean(v) for v in vals]
            line, = ax.plot(mins, mean, "o-" if key[0] == "ganforge" else "s--",
                            label=f"{key[0]}{' ' + key[2] if key[2] else ''}, {key[1]} "
                                  f"thread{'s' if key[1] > 1 else ''}")
            ax.fill_between(mins, [min(v) for v in vals], [max(v) for v in vals], color=line.get_color(), alpha=0.15)
            most = max(map(len, vals))
            for t, mu, v in zip(mins, mean, vals):  # a mean over fewer seeds than the line's others: say so
                if len(v) < most:
                    ax.annotate(f"{len(v)} seed{'s' if len(v) > 1 else ''}", (t, mu), textcoords="offset points",
                                xytext=(4, 4), fontsize=7, color=line.get_color())
                    if m == METRICS[0]:
                        fewer.append(f"{line.get_label()} at {t:g} min: {len(v)} of {most} seeds")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted({r["minutes"] for r in rows}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("wall-clock minutes of training")
        ax.set_ylabel(f"{m} (lower is better)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    which = f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}" if seeds else "mean over seeds"
    fig.suptitle(f"{preset}: quality per minute ({which}, band: range)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}" + (f" (points marked with their seed count: {'; '.join(fewer)})" if fewer else ""))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("preset", help="a ganforge image preset with labels (fashion, digits, ...)")
    p.add_argument("--minutes", default="", help="comma-separated budgets, e.g. 1,2,5,10,20 (none: only report)")
    p.add_argument("--seeds", default="0")
    p.add_argument("--systems", default="ganforge,reference")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--n", type=int, default=None, help="samples scored per run (default: ganforge eval's, "
                   "10,000 against all the training images)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="overrides for the preset "
                   "(its data settings also tell the judge which dataset the reference's samples are from)")
    p.add_argument("--out", required=True, help="runs and results.jsonl go here")
    p.add_argument("--plot", default=None, help="draw metric vs minutes into this PNG")
    p.add_argument("--plot-seeds", default=None, help="plot only these seeds (e.g. 0), so that budgets measured "
                   "on different sets of seeds are not drawn as one mean")
    a = p.parse_args(argv)

    def numbers(text: str, kind: type, flag: str, example: str) -> list:
        """A comma list of seeds or budgets, or one argparse message (exit 2) naming the flag."""
        try:
            values = [kind(x) for x in text.split(",") if x.strip()]
        except ValueError:
            values = None
        if values is None or any(v < 0 if kind is int else not v > 0 for v in values):
            p.error(f"{flag}: comma-separated {'seed numbers' if kind is int else 'minutes above 0'}, "
                    f"e.g. {example}; got {text!r}")
        return values

    plot_seeds = numbers(a.plot_seeds, int, "--plot-seeds", "0 or 0,1,2") if a.plot_seeds else None
    seeds = numbers(a.seeds, int, "--seeds", "0 or 0,1,2")
    if not seeds:
        p.error("--seeds: give at least one seed, e.g. 0 or 0,1,2")
    budgets = numbers(a.minutes, float, "--minutes", "1 or 1,2,5,10,20")
    if a.threads:
        torch.set_num_threads(a.threads)
    systems = [s for s in a.systems.split(",") if s]
    bad = set(systems) - {"ganforge", "reference"}
    if bad:
        p.error(f"--systems: unknown {sorted(bad)}; choose from ganforge, reference")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.jsonl"
    rows = [json.loads(x) for x in results.read_text().splitlines()] if results.exists() else []
    print(f"# {cpu_description()}, {torch.get_num_threads()} threads, torch {torch.__version__}", flush=True)
    for minutes in budgets:
        for seed in seeds:
            for system in systems:
                key = (system, a.preset, torch.get_num_threads(), minutes, seed, a.set)
                if any((r["system"], r["preset"], r["threads"], r["minutes"], r["seed"], r.get("set", [])) == key
                       for r in rows):
                    continue  # measured already (the same overrides too)
                row = run_one(system, a.preset, minutes, seed, out, a.n, a.set)
                print(json.dumps(row), flush=True)
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
    summarise([r for r in rows if r["preset"] == a.preset])
    if a.plot:
        plot(rows, Path(a.plot), a.preset, plot_seeds)


if __name__ == "__main__":
    main()
